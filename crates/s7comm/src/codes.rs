//! Open code sets of S7comm and S7comm-plus.
//!
//! Every code is a newtype over the wire value with named constants and a name lookup:
//! an IDS must *read* undefined values (and report them), not fail on them. Names
//! follow the usual S7 terminology (Siemens manuals, the public Wireshark and Snap7
//! descriptions), in snake_case.

use otwatch_event::Operation;

/// The S7comm header's message type (ROSCTR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rosctr(pub u8);

impl Rosctr {
    pub const JOB: Rosctr = Rosctr(1);
    pub const ACK: Rosctr = Rosctr(2);
    pub const ACK_DATA: Rosctr = Rosctr(3);
    pub const USERDATA: Rosctr = Rosctr(7);

    pub fn name(self) -> &'static str {
        match self {
            Self::JOB => "job",
            Self::ACK => "ack",
            Self::ACK_DATA => "ack_data",
            Self::USERDATA => "userdata",
            _ => "unknown",
        }
    }

    /// Ack and ack_data carry the error class and code in their header.
    pub fn has_error_field(self) -> bool {
        matches!(self, Self::ACK | Self::ACK_DATA)
    }

    pub fn is_known(self) -> bool {
        self.name() != "unknown"
    }
}

/// The function byte of a job / ack_data parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Function(pub u8);

impl Function {
    pub const CPU_SERVICES: Function = Function(0x00);
    pub const READ_VAR: Function = Function(0x04);
    pub const WRITE_VAR: Function = Function(0x05);
    pub const REQUEST_DOWNLOAD: Function = Function(0x1a);
    pub const DOWNLOAD_BLOCK: Function = Function(0x1b);
    pub const DOWNLOAD_ENDED: Function = Function(0x1c);
    pub const START_UPLOAD: Function = Function(0x1d);
    pub const UPLOAD: Function = Function(0x1e);
    pub const END_UPLOAD: Function = Function(0x1f);
    pub const PI_SERVICE: Function = Function(0x28);
    pub const PLC_STOP: Function = Function(0x29);
    pub const SETUP_COMMUNICATION: Function = Function(0xf0);

    pub fn name(self) -> &'static str {
        match self {
            Self::CPU_SERVICES => "cpu_services",
            Self::READ_VAR => "read_var",
            Self::WRITE_VAR => "write_var",
            Self::REQUEST_DOWNLOAD => "request_download",
            Self::DOWNLOAD_BLOCK => "download_block",
            Self::DOWNLOAD_ENDED => "download_ended",
            Self::START_UPLOAD => "start_upload",
            Self::UPLOAD => "upload",
            Self::END_UPLOAD => "end_upload",
            Self::PI_SERVICE => "pi_service",
            Self::PLC_STOP => "plc_stop",
            Self::SETUP_COMMUNICATION => "setup_communication",
            _ => "unknown",
        }
    }

    pub fn is_known(self) -> bool {
        self.name() != "unknown"
    }

    /// The normalized operation of the function (PI services are refined by their
    /// service name: see [`pi_service_operation`]).
    pub fn operation(self) -> Operation {
        match self {
            Self::READ_VAR => Operation::Read,
            Self::WRITE_VAR => Operation::Write,
            Self::REQUEST_DOWNLOAD | Self::DOWNLOAD_BLOCK | Self::DOWNLOAD_ENDED => {
                Operation::ProgramDownload
            }
            Self::START_UPLOAD | Self::UPLOAD | Self::END_UPLOAD => Operation::ProgramUpload,
            Self::PLC_STOP => Operation::ModeChange,
            // Setup communication only negotiates the PDU size and parallel jobs (no
            // identity, no credential): `other`, like the COTP connection itself.
            _ => Operation::Other,
        }
    }
}

/// The operation of a PI service (function 0x28) by its name as sent.
///
/// `_INSE` / `_DELE` activate or delete a block (the last step of a download, or a
/// block deletion), `_MODU` copies RAM to ROM (keeps the downloaded program):
/// program_download. `P_PROGRAM` starts or stops the program: mode_change.
pub fn pi_service_operation(service: &str) -> Operation {
    match service {
        "_INSE" | "_DELE" | "_MODU" => Operation::ProgramDownload,
        "P_PROGRAM" => Operation::ModeChange,
        _ => Operation::Other,
    }
}

/// A memory area of an any-pointer item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Area(pub u8);

impl Area {
    pub const SYSTEM_INFO_200: Area = Area(0x03);
    pub const SYSTEM_FLAGS_200: Area = Area(0x05);
    pub const ANALOG_INPUTS_200: Area = Area(0x06);
    pub const ANALOG_OUTPUTS_200: Area = Area(0x07);
    pub const COUNTERS: Area = Area(0x1c);
    pub const TIMERS: Area = Area(0x1d);
    pub const IEC_COUNTERS_200: Area = Area(0x1e);
    pub const IEC_TIMERS_200: Area = Area(0x1f);
    pub const PERIPHERY: Area = Area(0x80);
    pub const INPUTS: Area = Area(0x81);
    pub const OUTPUTS: Area = Area(0x82);
    pub const FLAGS: Area = Area(0x83);
    pub const DATA_BLOCK: Area = Area(0x84);
    pub const INSTANCE_DB: Area = Area(0x85);
    pub const LOCAL: Area = Area(0x86);
    pub const PREVIOUS_LOCAL: Area = Area(0x87);

    /// The short name of the area (`I`, `Q`, `M`, `DB`, ...), `unknown` when undefined.
    pub fn name(self) -> &'static str {
        match self {
            Self::SYSTEM_INFO_200 => "SI",
            Self::SYSTEM_FLAGS_200 => "SF",
            Self::ANALOG_INPUTS_200 => "AI",
            Self::ANALOG_OUTPUTS_200 => "AQ",
            Self::COUNTERS => "C",
            Self::TIMERS => "T",
            Self::IEC_COUNTERS_200 => "IEC_C",
            Self::IEC_TIMERS_200 => "IEC_T",
            Self::PERIPHERY => "P",
            Self::INPUTS => "I",
            Self::OUTPUTS => "Q",
            Self::FLAGS => "M",
            Self::DATA_BLOCK => "DB",
            Self::INSTANCE_DB => "DI",
            Self::LOCAL => "L",
            Self::PREVIOUS_LOCAL => "V",
            _ => "unknown",
        }
    }
}

/// The transport size of a *data* item (read var response, write var request): how
/// its length field counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataTransportSize(pub u8);

impl DataTransportSize {
    pub const NULL: DataTransportSize = DataTransportSize(0x00);
    pub const BIT: DataTransportSize = DataTransportSize(0x03);
    pub const BYTE_WORD_DWORD: DataTransportSize = DataTransportSize(0x04);
    pub const INTEGER: DataTransportSize = DataTransportSize(0x05);
    pub const DINTEGER: DataTransportSize = DataTransportSize(0x06);
    pub const REAL: DataTransportSize = DataTransportSize(0x07);
    pub const OCTET_STRING: DataTransportSize = DataTransportSize(0x09);

    /// The data length in bytes for a length field of `len`: BIT, BYTE/WORD/DWORD and
    /// INTEGER count bits (rounded up to whole bytes), the others bytes.
    pub fn byte_len(self, len: u16) -> usize {
        match self {
            Self::BIT | Self::BYTE_WORD_DWORD | Self::INTEGER => usize::from(len).div_ceil(8),
            _ => usize::from(len),
        }
    }
}

/// A userdata function group (low nibble of the type/group byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserdataGroup(pub u8);

impl UserdataGroup {
    pub const MODE_TRANSITION: UserdataGroup = UserdataGroup(0);
    pub const PROGRAMMER: UserdataGroup = UserdataGroup(1);
    pub const CYCLIC_DATA: UserdataGroup = UserdataGroup(2);
    pub const BLOCK_FUNCTIONS: UserdataGroup = UserdataGroup(3);
    pub const CPU_FUNCTIONS: UserdataGroup = UserdataGroup(4);
    pub const SECURITY: UserdataGroup = UserdataGroup(5);
    pub const PBC_BSEND_BRECV: UserdataGroup = UserdataGroup(6);
    pub const TIME_FUNCTIONS: UserdataGroup = UserdataGroup(7);
    pub const NC_PROGRAMMING: UserdataGroup = UserdataGroup(0xf);

    pub fn name(self) -> &'static str {
        match self {
            Self::MODE_TRANSITION => "mode_transition",
            Self::PROGRAMMER => "programmer_commands",
            Self::CYCLIC_DATA => "cyclic_data",
            Self::BLOCK_FUNCTIONS => "block_functions",
            Self::CPU_FUNCTIONS => "cpu_functions",
            Self::SECURITY => "security",
            Self::PBC_BSEND_BRECV => "pbc_bsend_brecv",
            Self::TIME_FUNCTIONS => "time_functions",
            Self::NC_PROGRAMMING => "nc_programming",
            _ => "unknown",
        }
    }

    /// The name of a subfunction of this group, `unknown` when undefined.
    pub fn subfunction_name(self, sub: u8) -> &'static str {
        match (self, sub) {
            (Self::MODE_TRANSITION, _) => "mode_transition",
            (Self::PROGRAMMER, 0x01) => "request_diag_data_type1",
            (Self::PROGRAMMER, 0x02) => "vartab",
            (Self::PROGRAMMER, 0x0c) => "read_diag_data",
            (Self::PROGRAMMER, 0x0e) => "remove_diag_data",
            (Self::PROGRAMMER, 0x0f) => "erase",
            (Self::PROGRAMMER, 0x10) => "forces",
            (Self::PROGRAMMER, 0x13) => "request_diag_data_type2",
            (Self::CYCLIC_DATA, 0x01) => "cyclic_memory",
            (Self::CYCLIC_DATA, 0x04) => "cyclic_unsubscribe",
            (Self::CYCLIC_DATA, 0x05) => "cyclic_change_driven",
            (Self::CYCLIC_DATA, 0x07) => "cyclic_change_driven_modify",
            (Self::CYCLIC_DATA, 0x08) => "cyclic_rdrec",
            (Self::BLOCK_FUNCTIONS, 0x01) => "list_blocks",
            (Self::BLOCK_FUNCTIONS, 0x02) => "list_blocks_of_type",
            (Self::BLOCK_FUNCTIONS, 0x03) => "get_block_info",
            (Self::CPU_FUNCTIONS, 0x01) => "szl_read",
            (Self::CPU_FUNCTIONS, 0x02) => "message_service",
            (Self::CPU_FUNCTIONS, 0x03) => "diagnostic_message",
            (Self::CPU_FUNCTIONS, 0x05) => "alarm8_indication",
            (Self::CPU_FUNCTIONS, 0x06) => "notify_indication",
            (Self::CPU_FUNCTIONS, 0x07) => "alarm8_lock",
            (Self::CPU_FUNCTIONS, 0x08) => "alarm8_unlock",
            (Self::CPU_FUNCTIONS, 0x09) => "scan_indication",
            (Self::CPU_FUNCTIONS, 0x0b) => "alarm_ack",
            (Self::CPU_FUNCTIONS, 0x0c) => "alarm_ack_indication",
            (Self::CPU_FUNCTIONS, 0x0d) => "alarm_lock_indication",
            (Self::CPU_FUNCTIONS, 0x0e) => "alarm_unlock_indication",
            (Self::CPU_FUNCTIONS, 0x11) => "alarm_sq_indication",
            (Self::CPU_FUNCTIONS, 0x12) => "alarm_s_indication",
            (Self::CPU_FUNCTIONS, 0x13) => "alarm_query",
            (Self::CPU_FUNCTIONS, 0x16) => "notify8_indication",
            (Self::SECURITY, 0x01) => "plc_password",
            (Self::SECURITY, 0x02) => "clean_session",
            (Self::PBC_BSEND_BRECV, 0x01) => "bsend_brecv",
            (Self::TIME_FUNCTIONS, 0x01) => "read_clock",
            (Self::TIME_FUNCTIONS, 0x02) => "set_clock",
            (Self::TIME_FUNCTIONS, 0x03) => "read_clock_following",
            (Self::TIME_FUNCTIONS, 0x04) => "set_clock_2",
            (Self::NC_PROGRAMMING, _) => "nc_programming",
            _ => "unknown",
        }
    }

    /// The normalized operation of a userdata subfunction.
    pub fn operation(self, sub: u8) -> Operation {
        match (self, sub) {
            (Self::MODE_TRANSITION, _) => Operation::Diagnostic,
            (Self::PROGRAMMER, 0x02) => Operation::Read,
            (Self::PROGRAMMER, 0x10) => Operation::Write,
            (Self::PROGRAMMER, _) => Operation::Diagnostic,
            (Self::CYCLIC_DATA, _) => Operation::Read,
            (Self::BLOCK_FUNCTIONS, _) => Operation::Diagnostic,
            (Self::CPU_FUNCTIONS, 0x01) => Operation::Identify,
            (Self::CPU_FUNCTIONS, _) => Operation::Diagnostic,
            (Self::SECURITY, _) => Operation::Session,
            (Self::TIME_FUNCTIONS, 0x01 | 0x03) => Operation::Read,
            (Self::TIME_FUNCTIONS, 0x02 | 0x04) => Operation::Write,
            _ => Operation::Other,
        }
    }
}

/// The block type of a download / upload file name (two ASCII characters).
pub fn block_type_name(code: [u8; 2]) -> Option<&'static str> {
    Some(match &code {
        b"08" => "OB",
        b"0A" => "DB",
        b"0B" => "SDB",
        b"0C" => "FC",
        b"0D" => "SFC",
        b"0E" => "FB",
        b"0F" => "SFB",
        _ => return None,
    })
}

/// An S7comm-plus function code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlusFunction(pub u16);

impl PlusFunction {
    pub const ERROR: PlusFunction = PlusFunction(0x04b1);
    pub const EXPLORE: PlusFunction = PlusFunction(0x04bb);
    pub const CREATE_OBJECT: PlusFunction = PlusFunction(0x04ca);
    pub const DELETE_OBJECT: PlusFunction = PlusFunction(0x04d4);
    pub const SET_VARIABLE: PlusFunction = PlusFunction(0x04f2);
    pub const GET_VARIABLE: PlusFunction = PlusFunction(0x04fc);
    pub const ADD_LINK: PlusFunction = PlusFunction(0x0506);
    pub const REMOVE_LINK: PlusFunction = PlusFunction(0x051a);
    pub const GET_LINK: PlusFunction = PlusFunction(0x0524);
    pub const SET_MULTI_VARIABLES: PlusFunction = PlusFunction(0x0542);
    pub const GET_MULTI_VARIABLES: PlusFunction = PlusFunction(0x054c);
    pub const BEGIN_SEQUENCE: PlusFunction = PlusFunction(0x0556);
    pub const END_SEQUENCE: PlusFunction = PlusFunction(0x0560);
    pub const INVOKE: PlusFunction = PlusFunction(0x056b);
    pub const SET_VAR_SUBSTREAMED: PlusFunction = PlusFunction(0x057c);
    pub const GET_VAR_SUBSTREAMED: PlusFunction = PlusFunction(0x0586);
    pub const GET_VARIABLES_ADDRESS: PlusFunction = PlusFunction(0x0590);
    pub const ABORT: PlusFunction = PlusFunction(0x059a);
    pub const ERROR2: PlusFunction = PlusFunction(0x05a9);
    pub const INIT_SSL: PlusFunction = PlusFunction(0x05b3);

    pub fn name(self) -> &'static str {
        match self {
            Self::ERROR | Self::ERROR2 => "error",
            Self::EXPLORE => "explore",
            Self::CREATE_OBJECT => "create_object",
            Self::DELETE_OBJECT => "delete_object",
            Self::SET_VARIABLE => "set_variable",
            Self::GET_VARIABLE => "get_variable",
            Self::ADD_LINK => "add_link",
            Self::REMOVE_LINK => "remove_link",
            Self::GET_LINK => "get_link",
            Self::SET_MULTI_VARIABLES => "set_multi_variables",
            Self::GET_MULTI_VARIABLES => "get_multi_variables",
            Self::BEGIN_SEQUENCE => "begin_sequence",
            Self::END_SEQUENCE => "end_sequence",
            Self::INVOKE => "invoke",
            Self::SET_VAR_SUBSTREAMED => "set_var_substreamed",
            Self::GET_VAR_SUBSTREAMED => "get_var_substreamed",
            Self::GET_VARIABLES_ADDRESS => "get_variables_address",
            Self::ABORT => "abort",
            Self::INIT_SSL => "init_ssl",
            _ => "unknown",
        }
    }

    pub fn is_known(self) -> bool {
        self.name() != "unknown"
    }

    /// The normalized operation. CreateObject / DeleteObject are `session` when they
    /// address the server session container (object id 0x120, how a session starts)
    /// or a session, `other` otherwise (they also create and delete program objects,
    /// which the bytes alone do not tell apart reliably).
    pub fn operation(self, session_object: bool) -> Operation {
        match self {
            Self::SET_VARIABLE | Self::SET_MULTI_VARIABLES | Self::SET_VAR_SUBSTREAMED => {
                Operation::Write
            }
            Self::GET_VARIABLE
            | Self::GET_MULTI_VARIABLES
            | Self::GET_VAR_SUBSTREAMED
            | Self::GET_LINK
            | Self::GET_VARIABLES_ADDRESS => Operation::Read,
            Self::EXPLORE => Operation::Diagnostic,
            Self::CREATE_OBJECT | Self::DELETE_OBJECT if session_object => Operation::Session,
            Self::INIT_SSL | Self::ABORT => Operation::Session,
            _ => Operation::Other,
        }
    }
}

/// S7comm-plus opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlusOpcode(pub u8);

impl PlusOpcode {
    pub const REQUEST: PlusOpcode = PlusOpcode(0x31);
    pub const RESPONSE: PlusOpcode = PlusOpcode(0x32);
    pub const NOTIFICATION: PlusOpcode = PlusOpcode(0x33);
    pub const RESPONSE2: PlusOpcode = PlusOpcode(0x02);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_operations() {
        assert_eq!(Function(0x1b).name(), "download_block");
        assert_eq!(Function(0x1b).operation(), Operation::ProgramDownload);
        assert_eq!(Function(0x1e).operation(), Operation::ProgramUpload);
        assert_eq!(Function(0x29).operation(), Operation::ModeChange);
        assert_eq!(Function(0xf0).operation(), Operation::Other);
        assert_eq!(Function(0x42).name(), "unknown");
        assert!(!Function(0x42).is_known());
        assert_eq!(pi_service_operation("_INSE"), Operation::ProgramDownload);
        assert_eq!(pi_service_operation("P_PROGRAM"), Operation::ModeChange);
        assert_eq!(pi_service_operation("_GARB"), Operation::Other);
        assert_eq!(Area(0x84).name(), "DB");
        assert_eq!(Area(0x99).name(), "unknown");
        assert_eq!(UserdataGroup(4).subfunction_name(1), "szl_read");
        assert_eq!(UserdataGroup(4).operation(1), Operation::Identify);
        assert_eq!(UserdataGroup(5).operation(1), Operation::Session);
        assert_eq!(UserdataGroup(2).operation(1), Operation::Read);
        assert_eq!(block_type_name(*b"0A"), Some("DB"));
        assert_eq!(block_type_name(*b"ZZ"), None);
        assert_eq!(PlusFunction(0x04f2).operation(false), Operation::Write);
        assert_eq!(PlusFunction(0x04ca).operation(true), Operation::Session);
        assert_eq!(PlusFunction(0x04ca).operation(false), Operation::Other);
    }

    #[test]
    fn data_lengths_count_bits_or_bytes() {
        assert_eq!(DataTransportSize::BIT.byte_len(1), 1);
        assert_eq!(DataTransportSize::BYTE_WORD_DWORD.byte_len(16), 2);
        assert_eq!(DataTransportSize::BYTE_WORD_DWORD.byte_len(17), 3);
        assert_eq!(DataTransportSize::OCTET_STRING.byte_len(5), 5);
        assert_eq!(DataTransportSize::REAL.byte_len(4), 4);
    }
}
