//! Open code sets and bit fields of DNP3.
//!
//! Codes are newtypes over the wire value with named constants and a name lookup:
//! an IDS must *read* undefined values (and report them), not fail on them.

use std::fmt;

/// An application-layer function code (IEEE 1815-2012 clause 4.2.2.5, table 4-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionCode(pub u8);

impl FunctionCode {
    pub const CONFIRM: FunctionCode = FunctionCode(0);
    pub const READ: FunctionCode = FunctionCode(1);
    pub const WRITE: FunctionCode = FunctionCode(2);
    pub const SELECT: FunctionCode = FunctionCode(3);
    pub const OPERATE: FunctionCode = FunctionCode(4);
    pub const DIRECT_OPERATE: FunctionCode = FunctionCode(5);
    pub const DIRECT_OPERATE_NR: FunctionCode = FunctionCode(6);
    pub const IMMED_FREEZE: FunctionCode = FunctionCode(7);
    pub const IMMED_FREEZE_NR: FunctionCode = FunctionCode(8);
    pub const FREEZE_CLEAR: FunctionCode = FunctionCode(9);
    pub const FREEZE_CLEAR_NR: FunctionCode = FunctionCode(10);
    pub const FREEZE_AT_TIME: FunctionCode = FunctionCode(11);
    pub const FREEZE_AT_TIME_NR: FunctionCode = FunctionCode(12);
    pub const COLD_RESTART: FunctionCode = FunctionCode(13);
    pub const WARM_RESTART: FunctionCode = FunctionCode(14);
    pub const INITIALIZE_DATA: FunctionCode = FunctionCode(15);
    pub const INITIALIZE_APPL: FunctionCode = FunctionCode(16);
    pub const START_APPL: FunctionCode = FunctionCode(17);
    pub const STOP_APPL: FunctionCode = FunctionCode(18);
    pub const SAVE_CONFIG: FunctionCode = FunctionCode(19);
    pub const ENABLE_UNSOLICITED: FunctionCode = FunctionCode(20);
    pub const DISABLE_UNSOLICITED: FunctionCode = FunctionCode(21);
    pub const ASSIGN_CLASS: FunctionCode = FunctionCode(22);
    pub const DELAY_MEASURE: FunctionCode = FunctionCode(23);
    pub const RECORD_CURRENT_TIME: FunctionCode = FunctionCode(24);
    pub const OPEN_FILE: FunctionCode = FunctionCode(25);
    pub const CLOSE_FILE: FunctionCode = FunctionCode(26);
    pub const DELETE_FILE: FunctionCode = FunctionCode(27);
    pub const GET_FILE_INFO: FunctionCode = FunctionCode(28);
    pub const AUTHENTICATE_FILE: FunctionCode = FunctionCode(29);
    pub const ABORT_FILE: FunctionCode = FunctionCode(30);
    pub const ACTIVATE_CONFIG: FunctionCode = FunctionCode(31);
    pub const AUTHENTICATE_REQ: FunctionCode = FunctionCode(32);
    pub const AUTH_REQ_NO_ACK: FunctionCode = FunctionCode(33);
    pub const RESPONSE: FunctionCode = FunctionCode(129);
    pub const UNSOLICITED_RESPONSE: FunctionCode = FunctionCode(130);
    pub const AUTHENTICATE_RESP: FunctionCode = FunctionCode(131);

    /// The snake_case name, `unknown` when the standard does not define the code.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "confirm",
            1 => "read",
            2 => "write",
            3 => "select",
            4 => "operate",
            5 => "direct_operate",
            6 => "direct_operate_no_ack",
            7 => "immediate_freeze",
            8 => "immediate_freeze_no_ack",
            9 => "freeze_and_clear",
            10 => "freeze_and_clear_no_ack",
            11 => "freeze_at_time",
            12 => "freeze_at_time_no_ack",
            13 => "cold_restart",
            14 => "warm_restart",
            15 => "initialize_data",
            16 => "initialize_application",
            17 => "start_application",
            18 => "stop_application",
            19 => "save_configuration",
            20 => "enable_unsolicited",
            21 => "disable_unsolicited",
            22 => "assign_class",
            23 => "delay_measure",
            24 => "record_current_time",
            25 => "open_file",
            26 => "close_file",
            27 => "delete_file",
            28 => "get_file_info",
            29 => "authenticate_file",
            30 => "abort_file",
            31 => "activate_config",
            32 => "authenticate_request",
            33 => "authenticate_request_no_ack",
            129 => "response",
            130 => "unsolicited_response",
            131 => "authenticate_response",
            _ => "unknown",
        }
    }

    pub fn is_known(self) -> bool {
        self.name() != "unknown"
    }

    /// Codes sent by an outstation (they carry IIN after the function code).
    pub fn is_response(self) -> bool {
        matches!(self.0, 129..=131)
    }

    /// Requests after which the master waits for a response (the `_NO_ACK` forms and
    /// CONFIRM expect none): these are the ones a response is paired with.
    pub fn expects_response(self) -> bool {
        self.0 <= 33 && !matches!(self.0, 0 | 6 | 8 | 10 | 12 | 33)
    }
}

impl fmt::Display for FunctionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// The link-layer control octet (clause 9.2.4.1.3): DIR, PRM, FCB/FCV (primary) or
/// DFC (secondary), and the link function code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkControl(pub u8);

impl LinkControl {
    /// DIR: set on frames sent by the master.
    pub fn dir(self) -> bool {
        self.0 & 0x80 != 0
    }
    /// PRM: set on frames from the primary (initiating) station.
    pub fn prm(self) -> bool {
        self.0 & 0x40 != 0
    }
    pub fn fcb(self) -> bool {
        self.0 & 0x20 != 0
    }
    /// FCV on primary frames, DFC on secondary frames.
    pub fn fcv_dfc(self) -> bool {
        self.0 & 0x10 != 0
    }
    pub fn function(self) -> LinkFunction {
        LinkFunction(self.0 & 0x0F)
    }
    /// Primary CONFIRMED_USER_DATA (3) and UNCONFIRMED_USER_DATA (4) are the only
    /// frames that carry a transport segment.
    pub fn carries_user_data(self) -> bool {
        self.prm() && matches!(self.function(), LinkFunction(3) | LinkFunction(4))
    }
}

/// A link-layer function code; its meaning depends on PRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkFunction(pub u8);

impl LinkFunction {
    pub fn name(self, primary: bool) -> &'static str {
        match (primary, self.0) {
            (true, 0) => "reset_link_states",
            (true, 1) => "reset_user_process",
            (true, 2) => "test_link_states",
            (true, 3) => "confirmed_user_data",
            (true, 4) => "unconfirmed_user_data",
            (true, 9) => "request_link_status",
            (false, 0) => "ack",
            (false, 1) => "nack",
            (false, 11) => "link_status",
            (false, 14) => "link_not_functioning",
            (false, 15) => "link_not_used",
            _ => "unknown",
        }
    }
}

/// The transport header octet (clause 8.2.1): FIN, FIR and a 6-bit sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportHeader(pub u8);

impl TransportHeader {
    pub fn fin(self) -> bool {
        self.0 & 0x80 != 0
    }
    pub fn fir(self) -> bool {
        self.0 & 0x40 != 0
    }
    pub fn seq(self) -> u8 {
        self.0 & 0x3F
    }
}

/// The application control octet (clause 4.2.2.4): FIR, FIN, CON, UNS and a 4-bit
/// sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppControl(pub u8);

impl AppControl {
    pub fn fir(self) -> bool {
        self.0 & 0x80 != 0
    }
    pub fn fin(self) -> bool {
        self.0 & 0x40 != 0
    }
    pub fn con(self) -> bool {
        self.0 & 0x20 != 0
    }
    pub fn uns(self) -> bool {
        self.0 & 0x10 != 0
    }
    pub fn seq(self) -> u8 {
        self.0 & 0x0F
    }
}

/// An object header's qualifier octet (clause 4.2.2.7.3): object prefix code (bits
/// 6-4) and range specifier code (bits 3-0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Qualifier(pub u8);

/// What precedes each object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    None,
    /// An index of 1, 2 or 4 octets.
    Index(u8),
    /// An object size of 1, 2 or 4 octets.
    Size(u8),
}

/// The range field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// Start and stop indexes of 1, 2 or 4 octets (codes 0-2; the virtual-address
    /// codes 3-5 have the same layout).
    StartStop(u8),
    /// No range field: all objects (code 6).
    All,
    /// A count of 1, 2 or 4 octets (codes 7-9).
    Count(u8),
    /// Free format: a 1-octet count (code 0xB).
    FreeFormat,
}

impl Qualifier {
    /// The object prefix, or `None` for the reserved code 7.
    pub fn prefix(self) -> Option<Prefix> {
        match (self.0 >> 4) & 0x07 {
            0 => Some(Prefix::None),
            1 => Some(Prefix::Index(1)),
            2 => Some(Prefix::Index(2)),
            3 => Some(Prefix::Index(4)),
            4 => Some(Prefix::Size(1)),
            5 => Some(Prefix::Size(2)),
            6 => Some(Prefix::Size(4)),
            _ => None,
        }
    }

    /// The range specifier, or `None` for reserved codes (0xA, 0xC-0xF) and a set
    /// reserved bit 7.
    pub fn range(self) -> Option<RangeSpec> {
        if self.0 & 0x80 != 0 {
            return None;
        }
        match self.0 & 0x0F {
            0 | 3 => Some(RangeSpec::StartStop(1)),
            1 | 4 => Some(RangeSpec::StartStop(2)),
            2 | 5 => Some(RangeSpec::StartStop(4)),
            6 => Some(RangeSpec::All),
            7 => Some(RangeSpec::Count(1)),
            8 => Some(RangeSpec::Count(2)),
            9 => Some(RangeSpec::Count(4)),
            0x0B => Some(RangeSpec::FreeFormat),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_function_has_a_name() {
        for code in (0..=33).chain(129..=131) {
            assert!(FunctionCode(code).is_known(), "{code}");
        }
        for code in (34..=128).chain(132..=255) {
            assert_eq!(FunctionCode(code).name(), "unknown", "{code}");
        }
        assert!(FunctionCode::RESPONSE.is_response());
        assert!(!FunctionCode::READ.is_response());
        assert!(FunctionCode::SELECT.expects_response());
        assert!(!FunctionCode::DIRECT_OPERATE_NR.expects_response());
        assert!(!FunctionCode::CONFIRM.expects_response());
    }

    #[test]
    fn bit_fields() {
        // C4: DIR, PRM, unconfirmed user data.
        let c = LinkControl(0xC4);
        assert!(c.dir() && c.prm() && !c.fcb() && !c.fcv_dfc());
        assert_eq!(c.function().name(true), "unconfirmed_user_data");
        assert!(c.carries_user_data());
        // 0B secondary link status: no user data.
        assert!(!LinkControl(0x0B).carries_user_data());
        assert_eq!(LinkFunction(0x0B).name(false), "link_status");
        let t = TransportHeader(0xC5);
        assert!(t.fin() && t.fir());
        assert_eq!(t.seq(), 5);
        let a = AppControl(0xF3);
        assert!(a.fir() && a.fin() && a.con() && a.uns());
        assert_eq!(a.seq(), 3);
    }

    #[test]
    fn qualifiers() {
        assert_eq!(Qualifier(0x06).range(), Some(RangeSpec::All));
        assert_eq!(Qualifier(0x17).prefix(), Some(Prefix::Index(1)));
        assert_eq!(Qualifier(0x17).range(), Some(RangeSpec::Count(1)));
        assert_eq!(Qualifier(0x28).prefix(), Some(Prefix::Index(2)));
        assert_eq!(Qualifier(0x5B).prefix(), Some(Prefix::Size(2)));
        assert_eq!(Qualifier(0x5B).range(), Some(RangeSpec::FreeFormat));
        assert_eq!(Qualifier(0x02).range(), Some(RangeSpec::StartStop(4)));
        assert_eq!(Qualifier(0x0A).range(), None);
        assert_eq!(Qualifier(0x70).prefix(), None);
        assert_eq!(Qualifier(0x86).range(), None);
    }
}
