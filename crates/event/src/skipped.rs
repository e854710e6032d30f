//! The bytes a dissector skips to regain its framing, and the anomaly that reports
//! them.

use crate::Anomalies;

/// One direction's stretch of skipped bytes (from the last framed PDU, or the last
/// loss, on), and whether the sensor's own loss explains it.
///
/// Bytes skipped right after a loss of the sensor's (a capture gap, or the start of a
/// flow joined mid-stream) are the rest of a PDU the loss cut: no fault of the device,
/// reported once as [`Anomalies::RESYNC`] while the stretch is shorter than the longest
/// PDU. Any other stretch, or one that grows longer, is reported once as
/// [`Anomalies::GARBAGE`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    bytes: u64,
    resync_reported: bool,
    garbage_reported: bool,
    after_loss: bool,
}

impl Skipped {
    /// Bytes were lost (a gap): a new stretch, explained by the loss.
    pub fn lost(&mut self) {
        *self = Skipped {
            after_loss: true,
            ..Skipped::default()
        };
    }

    /// The flow was joined mid-stream: its first bytes may be the rest of a PDU.
    pub fn joined(&mut self) {
        self.after_loss = true;
    }

    /// A PDU was framed: the stretch is over, and so is the loss.
    pub fn framed(&mut self) {
        *self = Skipped::default();
    }

    /// A trusted PDU start was found after the stretch: what comes next is framed.
    pub fn regained(&mut self) {
        self.after_loss = false;
    }

    /// Whole PDUs discarded as part of the loss's stretch (they continue one the loss
    /// cut): RESYNC, if nothing reported the stretch yet.
    pub fn discarded(&mut self) -> Option<Anomalies> {
        if self.resync_reported || self.garbage_reported {
            return None;
        }
        self.resync_reported = true;
        Some(Anomalies::RESYNC)
    }

    /// The stretch was reported otherwise (a header with an impossible length, say):
    /// no GARBAGE event for it.
    pub fn reported(&mut self) {
        self.garbage_reported = true;
    }

    /// Nothing skipped yet in this stretch.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// `n` more bytes skipped, `longest` being the longest PDU of the protocol: the
    /// anomaly of the event to report now, if one is due.
    pub fn skip(&mut self, n: usize, longest: usize) -> Option<Anomalies> {
        if n == 0 {
            return None;
        }
        self.bytes = self.bytes.saturating_add(n as u64);
        if self.after_loss && self.bytes < longest as u64 {
            if self.resync_reported || self.garbage_reported {
                return None;
            }
            self.resync_reported = true;
            return Some(Anomalies::RESYNC);
        }
        if self.garbage_reported {
            return None;
        }
        self.garbage_reported = true;
        Some(Anomalies::GARBAGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONGEST: usize = 260;

    #[test]
    fn a_stretch_is_reported_once() {
        let mut s = Skipped::default();
        assert_eq!(s.skip(0, LONGEST), None);
        assert_eq!(s.skip(10, LONGEST), Some(Anomalies::GARBAGE));
        assert_eq!(s.skip(1000, LONGEST), None);
        s.framed();
        assert_eq!(s.skip(1, LONGEST), Some(Anomalies::GARBAGE));
    }

    #[test]
    fn after_a_loss_what_a_pdu_can_leave_is_resync_and_more_is_garbage() {
        let mut s = Skipped::default();
        s.lost();
        assert_eq!(s.skip(100, LONGEST), Some(Anomalies::RESYNC));
        assert_eq!(s.skip(100, LONGEST), None);
        assert_eq!(s.skip(60, LONGEST), Some(Anomalies::GARBAGE));
        assert_eq!(s.skip(60, LONGEST), None);
        // In one piece as long as a PDU: garbage only.
        s.lost();
        assert_eq!(s.skip(LONGEST, LONGEST), Some(Anomalies::GARBAGE));
        assert_eq!(s.skip(1, LONGEST), None);
    }

    #[test]
    fn the_loss_ends_when_framing_is_regained() {
        let mut s = Skipped::default();
        s.joined();
        assert_eq!(s.skip(5, LONGEST), Some(Anomalies::RESYNC));
        // Regained, the next stretch (after the PDU) is the device's.
        s.regained();
        s.framed();
        assert_eq!(s.skip(5, LONGEST), Some(Anomalies::GARBAGE));
        // Regained alone: the rest of this stretch is no longer explained.
        s.lost();
        assert_eq!(s.skip(5, LONGEST), Some(Anomalies::RESYNC));
        s.regained();
        assert_eq!(s.skip(500, LONGEST), Some(Anomalies::GARBAGE));
    }
}
