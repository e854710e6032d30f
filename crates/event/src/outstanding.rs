//! The requests of one connection that wait for their answers, and what the
//! capture's losses say about them.
//!
//! A passive sensor sees a request and, usually, its answer. When the capture loses
//! bytes (a gap) or the client acknowledges answers the sensor never saw, the table of
//! outstanding requests no longer says what the server owes: answers that the sensor
//! cannot pair, and requests that will never be answered, are the capture's fault,
//! not the device's. This type keeps that bookkeeping once for the request/response
//! protocols whose servers may answer pipelined requests out of order (Modbus/TCP,
//! OPC UA, S7comm with one table per direction of the jobs), so that each dissector
//! only says what a request is and which answer pairs with it.
//!
//! DNP3 keeps its own: a master awaits one answer per association at a time, so
//! every answer there drops the older requests of its association that were
//! outstanding at a gap, where this type drops them at the first answer of their kind
//! after the gap only (the others may still be answered).

use std::collections::VecDeque;

use crate::Direction;

/// A request waiting for its answer.
pub trait Request {
    /// The server keeps this request until it has something to say, and answers such
    /// requests in their own order, not among the others (an OPC UA Publish). A full
    /// table makes room by dropping another request first, and an answer of the other
    /// kind never proves such a request lost.
    fn queued(&self) -> bool {
        false
    }

    /// The width in bits of [`Request::number`]: numbers count modulo `2^NUMBER_BITS`.
    const NUMBER_BITS: u32 = 32;

    /// The request's number, for clients that number their requests in sequence (a
    /// Modbus transaction id, an S7 PDU reference, an OPC UA request handle): the
    /// numbers between the last request before a gap and the first after it are
    /// those of the requests the gap took. `None`: the request carries no number.
    fn number(&self) -> Option<u32> {
        None
    }
}

/// The numbers of the requests a gap took that have not been answered yet: bit `i`
/// of `unanswered` stands for number `first + i`. Kept for as many requests as the
/// table holds after the one that told them (pushed when the count of pushes was
/// `since`), at most: no server answers later than that.
#[derive(Debug, Clone, Copy)]
struct LostNumbers {
    first: u32,
    unanswered: u64,
    since: u64,
}

/// The outstanding requests of one connection, oldest first, bounded, with the state
/// that the capture's losses leave.
///
/// Invariants: `gap_front` and `loss_front` count requests at the front of `pending`
/// and never exceed its length; `before_gap[lane]` counts the oldest requests of that
/// lane (`Request::queued` as an index) and never exceeds their number;
/// `lost_requests` is at most the bound in each lane.
#[derive(Debug, Clone)]
pub struct Outstanding<R> {
    max: usize,
    /// Linear search: the table is small (the bound) and usually holds one entry.
    pending: VecDeque<R>,
    /// A gap lost requests: this many more answers of each kind (not queued,
    /// queued) that find no request are explained by the loss, at most the bound,
    /// and none once a request of that kind sent after the gap is answered (queued
    /// requests are answered late, so a prompt answer to another kind does not show
    /// that none of them was lost). Bounded so that a gap never excuses unmatched
    /// answers for the rest of a flow.
    lost_requests: [usize; 2],
    /// Outstanding requests of each kind sent before that gap (the oldest of it).
    before_gap: [usize; 2],
    /// The answers being delivered come in a segment that acknowledges request bytes
    /// the sensor did not see: one that finds no request answers one of those.
    answering_unseen: bool,
    /// The requests being delivered come in a segment that acknowledges answer bytes
    /// the sensor did not see: the requests those answered are not outstanding any
    /// more, so a full table is no flood.
    answered_unseen: bool,
    /// A gap lost answers to requests of each kind (not queued, queued): the requests
    /// they answered wait for nothing, and go once a later request of their kind is
    /// answered.
    answers_lost: [bool; 2],
    /// Outstanding requests at that gap (the oldest ones): only their answers can
    /// have been in it. A server may answer pipelined requests out of order, so the
    /// requests sent since keep waiting. Those of the front still outstanding after
    /// the first answer stay counted: the answer of one may have been in the gap, so
    /// the room it takes in a full table is no flood.
    gap_front: usize,
    /// Outstanding requests when the client last acknowledged answers the sensor had
    /// not seen: the gap declared for them later (once the loss is certain) can only
    /// hold answers to these.
    loss_front: Option<usize>,
    /// The number of the last request pushed.
    last_number: Option<u32>,
    /// A gap in the requests came after the request numbered so: the first request
    /// after it tells which numbers the gap took.
    number_before_gap: Option<u32>,
    /// Those numbers: an answer that finds no request but carries one of them
    /// answers a request the gap took, however late or out of order it comes (a
    /// server may answer pipelined requests in any order, after pairing has resumed
    /// with the requests sent since).
    lost_numbers: Option<LostNumbers>,
    /// Requests dropped because a later one was answered after a gap in the answers,
    /// with the count of pushes when dropped: a server that answers out of order may
    /// still answer them, and then they pair. Kept for as many requests as the table
    /// holds, at most as many as it holds.
    late: VecDeque<(R, u64)>,
    /// Requests pushed so far.
    pushes: u64,
    /// The request the last answer took was outstanding at a gap in the answers.
    answered_at_gap: bool,
}

impl<R: Request> Outstanding<R> {
    /// An empty table that holds at most `max` requests (at least one).
    pub fn new(max: usize) -> Self {
        Outstanding {
            max: max.max(1),
            pending: VecDeque::new(),
            lost_requests: [0; 2],
            before_gap: [0; 2],
            answering_unseen: false,
            answered_unseen: false,
            answers_lost: [false; 2],
            gap_front: 0,
            loss_front: None,
            last_number: None,
            number_before_gap: None,
            lost_numbers: None,
            late: VecDeque::new(),
            pushes: 0,
            answered_at_gap: false,
        }
    }

    /// Number of requests waiting for their answer.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// A request was sent. When the table is full, the oldest request that is not
    /// [queued](Request::queued) (or the oldest) makes room. Returns whether that is
    /// a request flood: not when the request dropped was outstanding at a gap in the
    /// answers (its answer may have been in it), nor when the request comes in a
    /// segment that acknowledges answers the sensor did not see.
    #[must_use = "a flood is an anomaly of the request"]
    pub fn push(&mut self, request: R) -> bool {
        let flood = self.pending.len() >= self.max && {
            let answered_in_gap = self.evict();
            !answered_in_gap && !self.answered_unseen
        };
        self.count_number(request.number());
        self.pushes += 1;
        self.pending.push_back(request);
        flood
    }

    /// A request was sent with the id of one still outstanding (`same` accepts it).
    /// Both wait, answered in order, unless the capture may have lost the older one's
    /// answer: the older one was outstanding when the client acknowledged answers the
    /// sensor did not see, further than before (no answer seen since), or at a gap in
    /// the answers. Then the client has had that answer (it reuses the id), and the
    /// older request goes, making no flood. Otherwise the answer to each later request
    /// would pair with the one before it, for good, with clients that use one id for
    /// every request (some Modbus masters use 0, some OPC UA clients 1): every later
    /// answer a mismatch, or its values put on the wrong address. `request` is then
    /// pushed as by [`Outstanding::push`].
    #[must_use = "a flood is an anomaly of the request"]
    pub fn push_reusing(&mut self, request: R, same: impl Fn(&R) -> bool) -> bool {
        // The requests whose answers the capture may have lost: usually none, and
        // then nothing is searched. Not those sent since the client acknowledged
        // answers unseen, even in a segment that repeats that acknowledgment: the
        // bytes it covers answered older requests (a master that sends one id twice
        // after such a loss waits for both answers).
        let lost = self.gap_front.max(self.loss_front.unwrap_or(0));
        if let Some(k) = self.pending.iter().take(lost).position(same) {
            self.remove_at(k);
        }
        self.push(request)
    }

    /// An answer came: the oldest request that `pairs` accepts is taken, answered, or
    /// `None` when no request pairs. After a gap in the answers the older requests
    /// of its kind that were outstanding at the gap go too: their answers were in it.
    pub fn answer(&mut self, pairs: impl Fn(&R) -> bool) -> Option<R> {
        // An answer before any gap: what was acknowledged unseen may have been late
        // rather than lost. A later gap without a fresh acknowledgment counts every
        // outstanding request.
        self.loss_front = None;
        self.answered_at_gap = false;
        match self.pending.iter().position(&pairs) {
            Some(at) => self.take(at),
            None => self.answer_late(pairs),
        }
    }

    /// An answer that no outstanding request pairs with: one of the requests
    /// dropped after a gap in the answers may, answered out of order.
    #[cold]
    #[inline(never)]
    fn answer_late(&mut self, pairs: impl Fn(&R) -> bool) -> Option<R> {
        let (pushes, max) = (self.pushes, self.max);
        self.late.retain(|&(_, at)| within(pushes, at, max));
        let at = self.late.iter().position(|(r, _)| pairs(r))?;
        self.late.remove(at).map(|(r, _)| r)
    }

    /// `r` is dropped: a later request was answered after a gap in the answers. Its
    /// own answer may still come.
    #[cold]
    fn keep_late(&mut self, r: R) {
        if self.late.len() >= self.max {
            self.late.pop_front();
        }
        self.late.push_back((r, self.pushes));
    }

    /// An answer found no request: whether the capture explains it (it answers a
    /// request the sensor lost), so that it is reported as a resynchronisation, not
    /// as the device's fault alone. `queued`: the answer is to a
    /// [queued](Request::queued) kind of request; `number`: the number of the
    /// request it answers, if it says (see [`Request::number`]).
    pub fn unmatched_is_loss(&mut self, queued: bool, number: Option<u32>) -> bool {
        if number.is_some_and(|n| self.answer_lost_number(n)) {
            return true;
        }
        match self.lost_requests.get_mut(usize::from(queued)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => self.answering_unseen,
        }
    }

    /// The answer just paired by [`Outstanding::answer`] contradicts its request (a
    /// response mismatch): whether the capture explains it. It does when that request
    /// was outstanding at a gap in the answers (its own answer may have been lost
    /// there) and the answer comes in a segment that acknowledges requests the sensor
    /// never saw: it answers one of those, which reused the id. Clients that use one
    /// id for every request (some Modbus masters use 0) pair that way whenever a
    /// request and the answer before it are lost together. The request taken is not
    /// put back: its answer was in the gap.
    pub fn mismatch_is_loss(&self) -> bool {
        self.answered_at_gap && self.answering_unseen
    }

    /// Bytes of `dir` were lost (`ToServer`: requests, `ToClient`: answers).
    ///
    /// * Requests lost: answers that find no request are explained by the loss, until
    ///   a request sent after the gap is answered.
    /// * Answers lost: the requests outstanding now (or at the client's last
    ///   acknowledgment of unseen answers, if fewer) may have been answered in the
    ///   gap. They go once a later request of their kind is answered, so that they
    ///   neither fill the table nor pair with a later answer once ids wrap.
    pub fn on_gap(&mut self, dir: Direction) {
        match dir {
            Direction::ToServer => {
                self.lost_requests = [self.max; 2];
                self.number_before_gap = self.last_number;
                let queued = self.pending.iter().filter(|r| r.queued()).count();
                self.before_gap = [self.pending.len() - queued, queued];
            }
            Direction::ToClient => {
                let outstanding = self.pending.len();
                // Requests left from an earlier gap are among these: they were
                // outstanding when `loss_front` was taken.
                self.gap_front = self
                    .loss_front
                    .take()
                    .map_or(outstanding, |n| n.min(outstanding));
                self.answers_lost = [false; 2];
                for r in self.pending.iter().take(self.gap_front) {
                    self.answers_lost[usize::from(r.queued())] = true;
                }
            }
        }
    }

    /// The next data of the other direction comes in a segment that acknowledges
    /// bytes of `dir` the sensor never saw (lost by the capture, or still on their
    /// way). It holds until [`Outstanding::delivered`] for that direction: the
    /// acknowledgment is that segment's own evidence, not a state of the flow.
    ///
    /// * `ToServer` (unseen requests): an answer that finds no request answers one of
    ///   those ([`Outstanding::unmatched_is_loss`]).
    /// * `ToClient` (unseen answers): the client received answers the sensor did not
    ///   see, so the table overstates what is outstanding; a request that finds it
    ///   full is no flood.
    pub fn on_unseen_acked(&mut self, dir: Direction) {
        match dir {
            Direction::ToServer => self.answering_unseen = true,
            Direction::ToClient => self.answered_unseen = true,
        }
    }

    /// The client has now acknowledged answer bytes beyond any seen (`dir` is
    /// `ToClient`): if the capture lost them, the gap declared later holds answers to
    /// the requests outstanding now only, not to those sent after.
    pub fn on_acked_beyond(&mut self, dir: Direction) {
        if dir == Direction::ToClient {
            self.loss_front = Some(self.pending.len());
        }
    }

    /// The data of `dir` delivered with one segment has been read: the evidence of an
    /// unseen acknowledgment that came with it is spent.
    pub fn delivered(&mut self, dir: Direction) {
        match dir {
            Direction::ToServer => self.answered_unseen = false,
            Direction::ToClient => self.answering_unseen = false,
        }
    }

    /// The flow ended: unanswered requests are forgotten (they were reported when
    /// seen), and so are its losses.
    pub fn clear(&mut self) {
        *self = Outstanding::new(self.max);
    }

    /// A request numbered `number` (if it is) was pushed.
    #[inline]
    fn count_number(&mut self, number: Option<u32>) {
        if self.number_before_gap.is_some() {
            self.count_number_after_gap(number);
        }
        if let Some(number) = number {
            self.last_number = Some(modulo::<R>(number));
        }
    }

    /// After a gap in the requests, the first request says which numbers the gap
    /// took.
    #[cold]
    #[inline(never)]
    fn count_number_after_gap(&mut self, number: Option<u32>) {
        let Some(number) = number else {
            return;
        };
        if let Some(before) = self.number_before_gap.take() {
            // One lost request between consecutive numbers: numbers 1 apart lost
            // none. A span wider than the table (or a number not ahead at all) is no
            // count the client keeps.
            let lost = modulo::<R>(number.wrapping_sub(before)).wrapping_sub(1);
            let fits = usize::try_from(lost).is_ok_and(|n| (1..=self.max.min(64)).contains(&n));
            self.lost_numbers = fits.then(|| LostNumbers {
                first: modulo::<R>(before.wrapping_add(1)),
                unanswered: u64::MAX >> (64 - lost),
                since: self.pushes,
            });
        }
    }

    /// An unpaired answer carries `number`: whether it is one the gap took, not
    /// answered before.
    fn answer_lost_number(&mut self, number: u32) -> bool {
        let Some(lost) = &mut self.lost_numbers else {
            return false;
        };
        if !within(self.pushes, lost.since, self.max) {
            self.lost_numbers = None;
            return false;
        }
        let bit = modulo::<R>(number.wrapping_sub(lost.first));
        let Some(mask) = 1u64.checked_shl(bit) else {
            return false;
        };
        let unanswered = lost.unanswered & mask != 0;
        lost.unanswered &= !mask;
        unanswered
    }

    /// Makes room in the full table. Returns whether the request dropped was
    /// outstanding at a gap in the answers.
    fn evict(&mut self) -> bool {
        let k = self.pending.iter().position(|r| !r.queued()).unwrap_or(0);
        self.remove_at(k)
    }

    /// How many requests of `lane` come before the one at `k`.
    fn rank(&self, k: usize, lane: usize) -> usize {
        self.pending
            .iter()
            .take(k)
            .filter(|r| usize::from(r.queued()) == lane)
            .count()
    }

    /// Drops the request at `k`, answered or not. Returns whether it was outstanding
    /// at a gap in the answers.
    fn remove_at(&mut self, k: usize) -> bool {
        let Some(lane) = self.pending.get(k).map(|r| usize::from(r.queued())) else {
            return false;
        };
        let rank = self.rank(k, lane);
        self.pending.remove(k);
        if let Some(b) = self.before_gap.get_mut(lane).filter(|b| rank < **b) {
            *b -= 1;
        }
        self.loss_front = self.loss_front.map(|n| if k < n { n - 1 } else { n });
        let at_gap = k < self.gap_front;
        if at_gap {
            self.gap_front -= 1;
        }
        at_gap
    }

    /// Takes the request at `k`, answered (see [`Outstanding::answer`]). Once a
    /// request sent after a gap in the requests is answered, pairing has resumed.
    fn take(&mut self, k: usize) -> Option<R> {
        let queued = self.pending.get(k)?.queued();
        let lane = usize::from(queued);
        self.answered_at_gap = k < self.gap_front;
        let mut k = k;
        if std::mem::take(&mut self.answers_lost[lane]) {
            let before_gap = self.before_gap[lane];
            let front = self.gap_front.min(k);
            // The front's requests of this lane go, the others stay, in order: popped,
            // kept ones pushed at the back, then rotated back to the front.
            let (mut older, mut older_before_gap, mut kept) = (0, 0, 0);
            for _ in 0..front {
                let Some(r) = self.pending.pop_front() else {
                    break;
                };
                if r.queued() == queued {
                    if older < before_gap {
                        older_before_gap += 1;
                    }
                    older += 1;
                    self.keep_late(r);
                } else {
                    kept += 1;
                    self.pending.push_back(r);
                }
            }
            self.pending.rotate_right(kept);
            k -= older;
            self.before_gap[lane] -= older_before_gap;
            self.gap_front -= older;
        }
        if k < self.gap_front {
            self.gap_front -= 1;
        }
        if self.rank(k, lane) >= self.before_gap[lane] {
            self.lost_requests[lane] = 0;
            self.before_gap[lane] = 0;
        } else {
            self.before_gap[lane] -= 1;
        }
        // Usually the oldest request is the one answered: popped without a shift.
        if k == 0 {
            self.pending.pop_front()
        } else {
            self.pending.remove(k)
        }
    }
}

/// Whether what was kept when the count of pushes was `since` is still kept at
/// `pushes`: for as many requests as the table holds (`max`).
fn within(pushes: u64, since: u64, max: usize) -> bool {
    pushes - since <= max as u64
}

/// `n` modulo `2^R::NUMBER_BITS`.
fn modulo<R: Request>(n: u32) -> u32 {
    match 1u32.checked_shl(R::NUMBER_BITS) {
        Some(m) => n & (m - 1),
        None => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{ToClient, ToServer};

    /// A request with an id; `queued` like an OPC UA Publish.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Req {
        id: u32,
        queued: bool,
    }

    impl Request for Req {
        fn queued(&self) -> bool {
            self.queued
        }

        fn number(&self) -> Option<u32> {
            Some(self.id)
        }
    }

    /// A request numbered modulo 2^16, like a Modbus transaction id.
    #[derive(Debug)]
    struct Short(u16);

    impl Request for Short {
        const NUMBER_BITS: u32 = 16;

        fn number(&self) -> Option<u32> {
            Some(u32::from(self.0))
        }
    }

    fn req(id: u32) -> Req {
        Req { id, queued: false }
    }

    fn queued(id: u32) -> Req {
        Req { id, queued: true }
    }

    fn ids(t: &Outstanding<Req>) -> Vec<u32> {
        t.pending.iter().map(|r| r.id).collect()
    }

    fn answer(t: &mut Outstanding<Req>, id: u32) -> Option<u32> {
        t.answer(|r| r.id == id).map(|r| r.id)
    }

    #[test]
    fn a_mismatch_is_loss_only_with_a_gap_in_the_answers_and_unseen_requests() {
        // A client with one id: its answer and the next request lost together, the
        // next answer pairs with the request before.
        let mut t = Outstanding::new(4);
        assert!(!t.push(req(1)));
        t.on_gap(ToClient);
        t.on_unseen_acked(ToServer);
        assert_eq!(answer(&mut t, 1), Some(1));
        assert!(t.mismatch_is_loss());
        assert!(
            t.is_empty(),
            "the request answered in the gap is not put back"
        );

        // Either fact alone leaves the mismatch the device's.
        let mut t = Outstanding::new(4);
        assert!(!t.push(req(1)));
        t.on_gap(ToClient);
        assert_eq!(answer(&mut t, 1), Some(1));
        assert!(!t.mismatch_is_loss(), "no unseen request to answer");
        let mut t = Outstanding::new(4);
        assert!(!t.push(req(1)));
        t.on_unseen_acked(ToServer);
        assert_eq!(answer(&mut t, 1), Some(1));
        assert!(!t.mismatch_is_loss(), "the request's answer was not lost");

        // A request sent after the gap was not answered in it.
        let mut t = Outstanding::new(4);
        assert!(!t.push(req(1)));
        t.on_gap(ToClient);
        assert!(!t.push(req(2)));
        t.on_unseen_acked(ToServer);
        assert_eq!(answer(&mut t, 2), Some(2));
        assert!(!t.mismatch_is_loss());

        // The unseen acknowledgment is the evidence of one delivery only.
        let mut t = Outstanding::new(4);
        assert!(!t.push(req(1)));
        t.on_gap(ToClient);
        t.on_unseen_acked(ToServer);
        t.delivered(ToClient);
        assert_eq!(answer(&mut t, 1), Some(1));
        assert!(!t.mismatch_is_loss());
    }

    #[test]
    fn a_full_table_drops_the_oldest_and_flags_a_flood() {
        let mut t = Outstanding::new(2);
        assert!(!t.push(req(1)));
        assert!(!t.push(req(2)));
        assert!(t.push(req(3)));
        assert_eq!(ids(&t), [2, 3]);
        assert_eq!(answer(&mut t, 1), None);
        assert_eq!(answer(&mut t, 3), Some(3));
        assert_eq!(ids(&t), [2]);
    }

    #[test]
    fn a_queued_request_makes_room_last() {
        let mut t = Outstanding::new(3);
        for r in [queued(1), req(2), queued(3)] {
            assert!(!t.push(r));
        }
        assert!(t.push(req(4)));
        assert_eq!(ids(&t), [1, 3, 4]);
        assert!(t.push(queued(5)));
        assert_eq!(ids(&t), [1, 3, 5], "request 4 went before any queued one");
        assert!(t.push(req(6)));
        assert_eq!(ids(&t), [3, 5, 6], "only queued ones left: the oldest went");
    }

    #[test]
    fn requests_outstanding_at_a_gap_in_the_answers_make_room_without_a_flood() {
        let mut t = Outstanding::new(3);
        for id in 1..=3 {
            assert!(!t.push(req(id)));
        }
        t.on_gap(ToClient);
        // The server answers 3 first: 1 and 2 were older, and outstanding at the
        // gap, so their answers were in it.
        assert_eq!(answer(&mut t, 3), Some(3));
        assert!(t.is_empty());

        for id in 4..=6 {
            assert!(!t.push(req(id)));
        }
        t.on_gap(ToClient);
        // Answered out of order, the oldest first: 5 and 6 may still be answered.
        assert_eq!(answer(&mut t, 4), Some(4));
        assert_eq!(ids(&t), [5, 6]);
        assert!(!t.push(req(7)));
        assert!(!t.push(req(8)), "5 was outstanding at the gap");
        assert!(!t.push(req(9)), "so was 6");
        assert!(t.push(req(10)), "7 was sent after the gap");
    }

    #[test]
    fn a_lost_answer_drops_only_older_requests_of_its_kind() {
        let mut t = Outstanding::new(8);
        for r in [queued(1), req(2), queued(3), req(4), req(5)] {
            assert!(!t.push(r));
        }
        t.on_gap(ToClient);
        assert_eq!(answer(&mut t, 4), Some(4));
        assert_eq!(ids(&t), [1, 3, 5], "2 was answered in the gap, not 1 or 3");
        assert_eq!(answer(&mut t, 3), Some(3));
        assert_eq!(ids(&t), [5], "1 was answered in the gap");
    }

    #[test]
    fn a_request_dropped_after_a_gap_still_pairs_with_a_late_answer() {
        // iti_modbus_test.pcap: the capture loses the answer to 17389, and the
        // gateway answers 17391 before 17390.
        let mut t = Outstanding::new(4);
        assert!(!t.push(req(17389)));
        assert!(!t.push(req(17390)));
        t.on_acked_beyond(ToClient);
        assert!(!t.push(req(17391)));
        t.on_gap(ToClient);
        assert_eq!(answer(&mut t, 17391), Some(17391));
        assert!(
            t.is_empty(),
            "17389 and 17390 may have been answered in the gap"
        );
        assert_eq!(
            answer(&mut t, 17390),
            Some(17390),
            "answered late after all"
        );
        assert_eq!(answer(&mut t, 17390), None, "answered once");
        // For as many requests as the table holds.
        for id in 1..=4 {
            assert!(!t.push(req(id)));
            assert_eq!(answer(&mut t, id), Some(id));
        }
        assert_eq!(answer(&mut t, 17389), Some(17389));
        let mut t = Outstanding::new(4);
        assert!(!t.push(req(17389)));
        assert!(!t.push(req(17390)));
        t.on_gap(ToClient);
        assert_eq!(answer(&mut t, 17390), Some(17390));
        for id in 1..=5 {
            assert!(!t.push(req(id)));
            assert_eq!(answer(&mut t, id), Some(id));
        }
        assert_eq!(answer(&mut t, 17389), None, "five requests since");
    }

    #[test]
    fn only_requests_outstanding_at_the_unseen_acknowledgment_wait_for_lost_answers() {
        let mut t = Outstanding::new(8);
        assert!(!t.push(req(1)));
        assert!(!t.push(req(2)));
        t.on_acked_beyond(ToClient);
        assert!(!t.push(req(3)));
        assert!(!t.push(req(4)));
        // The gap is declared once the loss is certain: only 1 and 2 can have been
        // answered in it.
        t.on_gap(ToClient);
        assert_eq!(answer(&mut t, 4), Some(4));
        assert_eq!(ids(&t), [3]);

        // An answer seen before the gap: the acknowledged bytes were late, not lost.
        let mut t = Outstanding::new(8);
        assert!(!t.push(req(1)));
        t.on_acked_beyond(ToClient);
        assert!(!t.push(req(2)));
        assert_eq!(answer(&mut t, 1), Some(1));
        assert!(!t.push(req(3)));
        t.on_gap(ToClient);
        assert_eq!(answer(&mut t, 3), Some(3));
        assert!(t.is_empty(), "every request outstanding at the gap counts");
    }

    #[test]
    fn unseen_answers_excuse_a_full_table_for_one_delivery() {
        let mut t = Outstanding::new(1);
        assert!(!t.push(req(1)));
        t.on_unseen_acked(ToClient);
        assert!(!t.push(req(2)));
        assert!(!t.push(req(3)));
        t.delivered(ToServer);
        assert!(t.push(req(4)));
        assert_eq!(ids(&t), [4]);
    }

    #[test]
    fn an_answer_numbered_as_a_request_the_gap_took_is_explained_however_late() {
        // A Modbus gateway of iti_modbus_test.pcap answers 17414 before 17413. The
        // capture lost request 17413: its answer comes after pairing has resumed.
        let mut t = Outstanding::new(64);
        assert!(!t.push(req(17412)));
        assert_eq!(answer(&mut t, 17412), Some(17412));
        t.on_gap(ToServer);
        assert!(!t.push(req(17414)));
        assert_eq!(answer(&mut t, 17414), Some(17414));
        assert!(!t.push(req(17415)));
        assert_eq!(answer(&mut t, 17413), None);
        assert!(
            !t.unmatched_is_loss(false, Some(17415)),
            "not lost: outstanding"
        );
        assert!(!t.unmatched_is_loss(false, Some(17412)), "answered before");
        assert!(t.unmatched_is_loss(false, Some(17413)));
        assert!(!t.unmatched_is_loss(false, Some(17413)), "answered once");

        // Three lost, in any order; the numbers wrap.
        let mut t = Outstanding::<Short>::new(64);
        assert!(!t.push(Short(65534)));
        t.on_gap(ToServer);
        assert!(!t.push(Short(2)));
        assert!(t.answer(|r| r.0 == 2).is_some());
        for n in [0, 65535, 1] {
            assert!(t.unmatched_is_loss(false, Some(n)), "{n}");
        }
        assert!(!t.unmatched_is_loss(false, Some(2)));
        assert!(!t.unmatched_is_loss(false, Some(65534)));
    }

    #[test]
    fn request_numbers_excuse_only_a_count_kept_and_not_for_ever() {
        // One id for every request, or ids further apart than the table holds:
        // nothing is counted.
        for (before, after) in [(7, 7), (1, 67), (9, 3)] {
            let mut t = Outstanding::new(64);
            assert!(!t.push(req(before)));
            t.on_gap(ToServer);
            assert!(!t.push(req(after)));
            assert_eq!(answer(&mut t, before), Some(before));
            assert_eq!(answer(&mut t, after), Some(after));
            let between = before.wrapping_add(1);
            assert!(
                !t.unmatched_is_loss(false, Some(between)),
                "{before}..{after}"
            );
        }
        // 65 apart: 64 lost, as many as a table of 64 holds.
        let mut t = Outstanding::new(64);
        assert!(!t.push(req(1)));
        t.on_gap(ToServer);
        assert!(!t.push(req(66)));
        assert_eq!(answer(&mut t, 66), Some(66));
        assert!(t.unmatched_is_loss(false, Some(65)));
        assert!(t.unmatched_is_loss(false, Some(2)));
        // A table of 4 keeps the lost numbers for 4 requests after the first.
        let mut t = Outstanding::new(4);
        assert!(!t.push(req(1)));
        t.on_gap(ToServer);
        for id in 4..=7 {
            assert!(!t.push(req(id)));
            assert_eq!(answer(&mut t, id), Some(id));
        }
        assert!(t.unmatched_is_loss(false, Some(2)));
        assert!(!t.push(req(8)));
        assert!(
            !t.unmatched_is_loss(false, Some(3)),
            "four requests since 4"
        );
    }

    #[test]
    fn a_gap_in_the_requests_explains_unmatched_answers_until_pairing_resumes() {
        let mut t = Outstanding::new(2);
        assert!(!t.push(req(1)));
        t.on_gap(ToServer);
        assert!(!t.push(req(2)));
        assert_eq!(answer(&mut t, 9), None);
        assert!(t.unmatched_is_loss(false, None));
        assert_eq!(answer(&mut t, 1), Some(1), "sent before the gap");
        assert_eq!(answer(&mut t, 9), None);
        assert!(t.unmatched_is_loss(false, None));
        assert_eq!(answer(&mut t, 2), Some(2), "sent after the gap");
        assert_eq!(answer(&mut t, 9), None);
        assert!(!t.unmatched_is_loss(false, None));
    }

    #[test]
    fn a_gap_explains_at_most_the_bound_of_unmatched_answers() {
        let mut t = Outstanding::<Req>::new(2);
        t.on_gap(ToServer);
        assert!(t.unmatched_is_loss(false, None));
        assert!(t.unmatched_is_loss(false, None));
        assert!(!t.unmatched_is_loss(false, None));
    }

    #[test]
    fn unseen_requests_explain_unmatched_answers_for_one_delivery() {
        let mut t = Outstanding::<Req>::new(2);
        assert!(!t.unmatched_is_loss(false, None));
        t.on_unseen_acked(ToServer);
        assert!(t.unmatched_is_loss(false, None));
        assert!(t.unmatched_is_loss(false, None));
        t.delivered(ToClient);
        assert!(!t.unmatched_is_loss(false, None));
    }

    #[test]
    fn a_reused_id_replaces_a_request_whose_answer_the_capture_may_have_lost() {
        // Ids 0, 10, 20... are one id on the wire.
        let same = |r: &Req| r.id % 10 == 0;
        // No loss: a client that pipelines with one id has both answered in order.
        let mut t = Outstanding::new(4);
        assert!(!t.push_reusing(req(0), same));
        assert!(!t.push_reusing(req(10), same));
        assert_eq!(ids(&t), [0, 10]);
        // This request's segment acknowledges answers the sensor did not see, further
        // than before: the client had the answer to 0 (the oldest with that id).
        t.on_acked_beyond(ToClient);
        t.on_unseen_acked(ToClient);
        assert!(!t.push_reusing(req(20), same));
        assert_eq!(ids(&t), [10, 20]);
        t.delivered(ToServer);
        // 10 was outstanding at that acknowledgment too: the bytes may have held its
        // answer as well.
        t.on_unseen_acked(ToClient);
        assert!(!t.push_reusing(req(30), same));
        assert_eq!(ids(&t), [20, 30]);
        // Sent after it, 20 and 30 wait for their answers, though the acknowledgment
        // comes again (iti_modbus_test.pcap: a master sends id 504 three times after
        // the capture lost the answer to 503).
        assert!(!t.push_reusing(req(40), same));
        assert_eq!(ids(&t), [20, 30, 40]);
        t.delivered(ToServer);
        // 10 was outstanding at a gap in the answers; 31 was not.
        let mut t = Outstanding::new(2);
        assert!(!t.push(req(10)));
        t.on_gap(ToClient);
        assert!(!t.push(req(31)));
        assert!(
            !t.push_reusing(req(20), same),
            "replaced 10, so no room was made"
        );
        assert_eq!(ids(&t), [31, 20]);
        assert!(t.push_reusing(req(30), same), "20 stays, 31 makes room");
        assert_eq!(ids(&t), [20, 30]);
        // 10 was outstanding when the client acknowledged answers not seen (an S7
        // setup of iti_mb2.pcap, PDU reference 1, whose answer the capture lost; the
        // gap is declared only once the PLC sends again): the next job with that
        // reference replaces it. 41 came after, and no answer came since.
        let mut t = Outstanding::new(4);
        assert!(!t.push(req(10)));
        t.on_acked_beyond(ToClient);
        assert!(!t.push_reusing(req(41), same));
        assert!(!t.push_reusing(req(20), same));
        assert_eq!(ids(&t), [41, 20]);
        // An answer since: the acknowledged bytes may have been late, not lost.
        let mut t = Outstanding::new(4);
        assert!(!t.push(req(10)));
        t.on_acked_beyond(ToClient);
        assert!(!t.push(req(41)));
        assert_eq!(answer(&mut t, 41), Some(41));
        assert!(!t.push_reusing(req(20), same));
        assert_eq!(ids(&t), [10, 20]);
    }

    #[test]
    fn the_end_of_a_flow_forgets_its_requests_and_losses() {
        let mut t = Outstanding::new(1);
        assert!(!t.push(req(1)));
        t.on_gap(ToServer);
        t.on_gap(ToClient);
        t.clear();
        assert!(t.is_empty());
        assert!(!t.unmatched_is_loss(false, None));
        assert!(!t.push(req(2)));
        assert!(t.push(req(3)));
    }

    /// Random operations keep the counts of the front within the table.
    #[test]
    fn the_counts_of_the_front_stay_within_the_table() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            // xorshift64*: a fixed sequence, no dependency for one test.
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            seed.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        };
        for _ in 0..200 {
            let mut t = Outstanding::<Req>::new(1 + next(6) as usize);
            let mut id = 0;
            for _ in 0..300 {
                let dir = if next(2) == 0 { ToServer } else { ToClient };
                match next(8) {
                    0 => t.on_gap(dir),
                    1 => t.on_unseen_acked(dir),
                    2 => t.on_acked_beyond(dir),
                    3 => t.delivered(dir),
                    4 => {
                        let target = next(u64::from(id) + 1);
                        let _ = t.answer(|r| u64::from(r.id) == target);
                    }
                    5 => {
                        let _ = t.unmatched_is_loss(next(2) == 0, None);
                    }
                    _ => {
                        id += 1;
                        let r = Req {
                            id,
                            queued: next(4) == 0,
                        };
                        let _ = t.push(r);
                    }
                }
                let len = t.len();
                assert!(len <= t.max);
                let queued = t.pending.iter().filter(|r| r.queued()).count();
                assert!(t.before_gap[0] <= len - queued && t.before_gap[1] <= queued);
                assert!(t.gap_front <= len);
                assert!(t.loss_front.is_none_or(|n| n <= len));
                assert!(t.lost_requests.iter().all(|&n| n <= t.max));
            }
        }
    }
}
