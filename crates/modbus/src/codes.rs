//! Open code sets of Modbus and UMAS.
//!
//! Every code is a newtype over the wire value with named constants and a name lookup:
//! an IDS must *read* undefined values (and report them), not fail on them.

use std::fmt;

use otwatch_event::Operation;

/// A Modbus function code as on the wire (the exception bit 0x80 included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionCode(pub u8);

impl FunctionCode {
    pub const READ_COILS: FunctionCode = FunctionCode(1);
    pub const READ_DISCRETE_INPUTS: FunctionCode = FunctionCode(2);
    pub const READ_HOLDING_REGISTERS: FunctionCode = FunctionCode(3);
    pub const READ_INPUT_REGISTERS: FunctionCode = FunctionCode(4);
    pub const WRITE_SINGLE_COIL: FunctionCode = FunctionCode(5);
    pub const WRITE_SINGLE_REGISTER: FunctionCode = FunctionCode(6);
    pub const READ_EXCEPTION_STATUS: FunctionCode = FunctionCode(7);
    pub const DIAGNOSTICS: FunctionCode = FunctionCode(8);
    pub const GET_COMM_EVENT_COUNTER: FunctionCode = FunctionCode(11);
    pub const GET_COMM_EVENT_LOG: FunctionCode = FunctionCode(12);
    pub const WRITE_MULTIPLE_COILS: FunctionCode = FunctionCode(15);
    pub const WRITE_MULTIPLE_REGISTERS: FunctionCode = FunctionCode(16);
    pub const REPORT_SERVER_ID: FunctionCode = FunctionCode(17);
    pub const READ_FILE_RECORD: FunctionCode = FunctionCode(20);
    pub const WRITE_FILE_RECORD: FunctionCode = FunctionCode(21);
    pub const MASK_WRITE_REGISTER: FunctionCode = FunctionCode(22);
    pub const READ_WRITE_MULTIPLE_REGISTERS: FunctionCode = FunctionCode(23);
    pub const READ_FIFO_QUEUE: FunctionCode = FunctionCode(24);
    pub const ENCAPSULATED_INTERFACE_TRANSPORT: FunctionCode = FunctionCode(43);
    /// Schneider Electric UMAS (a vendor use of a user-defined code).
    pub const UMAS: FunctionCode = FunctionCode(90);

    /// The exception flag of a response function code.
    pub const EXCEPTION_BIT: u8 = 0x80;

    /// Whether the exception bit is set.
    pub fn is_exception(self) -> bool {
        self.0 & Self::EXCEPTION_BIT != 0
    }

    /// The code without the exception bit.
    pub fn base(self) -> FunctionCode {
        FunctionCode(self.0 & !Self::EXCEPTION_BIT)
    }

    /// The snake_case name of the function (of the base code), `unknown` when undefined.
    pub fn name(self) -> &'static str {
        match self.base() {
            Self::READ_COILS => "read_coils",
            Self::READ_DISCRETE_INPUTS => "read_discrete_inputs",
            Self::READ_HOLDING_REGISTERS => "read_holding_registers",
            Self::READ_INPUT_REGISTERS => "read_input_registers",
            Self::WRITE_SINGLE_COIL => "write_single_coil",
            Self::WRITE_SINGLE_REGISTER => "write_single_register",
            Self::READ_EXCEPTION_STATUS => "read_exception_status",
            Self::DIAGNOSTICS => "diagnostics",
            Self::GET_COMM_EVENT_COUNTER => "get_comm_event_counter",
            Self::GET_COMM_EVENT_LOG => "get_comm_event_log",
            Self::WRITE_MULTIPLE_COILS => "write_multiple_coils",
            Self::WRITE_MULTIPLE_REGISTERS => "write_multiple_registers",
            Self::REPORT_SERVER_ID => "report_server_id",
            Self::READ_FILE_RECORD => "read_file_record",
            Self::WRITE_FILE_RECORD => "write_file_record",
            Self::MASK_WRITE_REGISTER => "mask_write_register",
            Self::READ_WRITE_MULTIPLE_REGISTERS => "read_write_multiple_registers",
            Self::READ_FIFO_QUEUE => "read_fifo_queue",
            Self::ENCAPSULATED_INTERFACE_TRANSPORT => "encapsulated_interface_transport",
            Self::UMAS => "umas",
            _ => "unknown",
        }
    }

    /// Whether the base code is one this dissector knows (public codes of the
    /// specification, plus UMAS).
    pub fn is_known(self) -> bool {
        self.name() != "unknown"
    }
}

impl fmt::Display for FunctionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

/// A Modbus exception code (the single data byte of an exception response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExceptionCode(pub u8);

impl ExceptionCode {
    pub const ILLEGAL_FUNCTION: ExceptionCode = ExceptionCode(0x01);
    pub const ILLEGAL_DATA_ADDRESS: ExceptionCode = ExceptionCode(0x02);
    pub const ILLEGAL_DATA_VALUE: ExceptionCode = ExceptionCode(0x03);
    pub const SERVER_DEVICE_FAILURE: ExceptionCode = ExceptionCode(0x04);
    pub const ACKNOWLEDGE: ExceptionCode = ExceptionCode(0x05);
    pub const SERVER_DEVICE_BUSY: ExceptionCode = ExceptionCode(0x06);
    pub const MEMORY_PARITY_ERROR: ExceptionCode = ExceptionCode(0x08);
    pub const GATEWAY_PATH_UNAVAILABLE: ExceptionCode = ExceptionCode(0x0A);
    pub const GATEWAY_TARGET_FAILED_TO_RESPOND: ExceptionCode = ExceptionCode(0x0B);

    pub fn name(self) -> &'static str {
        match self {
            Self::ILLEGAL_FUNCTION => "illegal_function",
            Self::ILLEGAL_DATA_ADDRESS => "illegal_data_address",
            Self::ILLEGAL_DATA_VALUE => "illegal_data_value",
            Self::SERVER_DEVICE_FAILURE => "server_device_failure",
            Self::ACKNOWLEDGE => "acknowledge",
            Self::SERVER_DEVICE_BUSY => "server_device_busy",
            Self::MEMORY_PARITY_ERROR => "memory_parity_error",
            Self::GATEWAY_PATH_UNAVAILABLE => "gateway_path_unavailable",
            Self::GATEWAY_TARGET_FAILED_TO_RESPOND => "gateway_target_failed_to_respond",
            _ => "unknown",
        }
    }

    pub fn is_known(self) -> bool {
        self.name() != "unknown"
    }
}

/// Sub-function of Diagnostics (function 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiagnosticSubFunction(pub u16);

impl DiagnosticSubFunction {
    pub const RETURN_QUERY_DATA: DiagnosticSubFunction = DiagnosticSubFunction(0x00);
    pub const RESTART_COMMUNICATIONS: DiagnosticSubFunction = DiagnosticSubFunction(0x01);
    pub const RETURN_DIAGNOSTIC_REGISTER: DiagnosticSubFunction = DiagnosticSubFunction(0x02);
    pub const CHANGE_ASCII_DELIMITER: DiagnosticSubFunction = DiagnosticSubFunction(0x03);
    pub const FORCE_LISTEN_ONLY: DiagnosticSubFunction = DiagnosticSubFunction(0x04);
    pub const CLEAR_COUNTERS: DiagnosticSubFunction = DiagnosticSubFunction(0x0A);
}

/// MEI type of Encapsulated Interface Transport (function 43).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeiType(pub u8);

impl MeiType {
    pub const CANOPEN_GENERAL_REFERENCE: MeiType = MeiType(0x0D);
    pub const READ_DEVICE_IDENTIFICATION: MeiType = MeiType(0x0E);
}

/// A Schneider Electric UMAS function code (the second byte of a function 90
/// request).
///
/// UMAS has no public specification. The codes and names below agree across the
/// public descriptions that were checked: the "Unity (UMAS) protocol" series on
/// lirasenlared.blogspot.com (2017) as summarised in TonyPhipps/tech-notes
/// `protocol-modbus-umas.md`, and independent open-source tables built from it.
/// Note UMAS's own direction words: "upload" is engineering station -> PLC (what
/// otwatch calls a program *download*), "download" is PLC -> station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UmasFunctionCode(pub u8);

impl UmasFunctionCode {
    pub const INIT_COMM: UmasFunctionCode = UmasFunctionCode(0x01);
    pub const READ_ID: UmasFunctionCode = UmasFunctionCode(0x02);
    pub const READ_PROJECT_INFO: UmasFunctionCode = UmasFunctionCode(0x03);
    pub const READ_PLC_INFO: UmasFunctionCode = UmasFunctionCode(0x04);
    pub const READ_CARD_INFO: UmasFunctionCode = UmasFunctionCode(0x06);
    pub const REPEAT: UmasFunctionCode = UmasFunctionCode(0x0A);
    pub const TAKE_PLC_RESERVATION: UmasFunctionCode = UmasFunctionCode(0x10);
    pub const RELEASE_PLC_RESERVATION: UmasFunctionCode = UmasFunctionCode(0x11);
    pub const KEEP_ALIVE: UmasFunctionCode = UmasFunctionCode(0x12);
    pub const READ_MEMORY_BLOCK: UmasFunctionCode = UmasFunctionCode(0x20);
    pub const READ_VARIABLES: UmasFunctionCode = UmasFunctionCode(0x22);
    pub const WRITE_VARIABLES: UmasFunctionCode = UmasFunctionCode(0x23);
    pub const READ_COILS_REGISTERS: UmasFunctionCode = UmasFunctionCode(0x24);
    pub const WRITE_COILS_REGISTERS: UmasFunctionCode = UmasFunctionCode(0x25);
    pub const ENABLE_DISABLE_DATA_DICTIONARY: UmasFunctionCode = UmasFunctionCode(0x26);
    /// Station -> PLC transfer begins (UMAS "upload").
    pub const INITIALIZE_UPLOAD: UmasFunctionCode = UmasFunctionCode(0x30);
    pub const UPLOAD_BLOCK: UmasFunctionCode = UmasFunctionCode(0x31);
    pub const END_STRATEGY_UPLOAD: UmasFunctionCode = UmasFunctionCode(0x32);
    /// PLC -> station transfer begins (UMAS "download").
    pub const INITIALIZE_DOWNLOAD: UmasFunctionCode = UmasFunctionCode(0x33);
    pub const DOWNLOAD_BLOCK: UmasFunctionCode = UmasFunctionCode(0x34);
    pub const END_STRATEGY_DOWNLOAD: UmasFunctionCode = UmasFunctionCode(0x35);
    pub const READ_ETH_MASTER_DATA: UmasFunctionCode = UmasFunctionCode(0x39);
    pub const START_PLC: UmasFunctionCode = UmasFunctionCode(0x40);
    pub const STOP_PLC: UmasFunctionCode = UmasFunctionCode(0x41);
    pub const MONITOR_PLC: UmasFunctionCode = UmasFunctionCode(0x50);
    pub const CHECK_PLC: UmasFunctionCode = UmasFunctionCode(0x58);
    pub const READ_IO_OBJECT: UmasFunctionCode = UmasFunctionCode(0x70);
    pub const WRITE_IO_OBJECT: UmasFunctionCode = UmasFunctionCode(0x71);
    pub const GET_STATUS_MODULE: UmasFunctionCode = UmasFunctionCode(0x73);

    /// Response status byte (in place of the function code): success.
    pub const STATUS_OK: u8 = 0xFE;
    /// Response status byte: error.
    pub const STATUS_ERROR: u8 = 0xFD;

    pub fn name(self) -> &'static str {
        match self {
            Self::INIT_COMM => "init_comm",
            Self::READ_ID => "read_id",
            Self::READ_PROJECT_INFO => "read_project_info",
            Self::READ_PLC_INFO => "read_plc_info",
            Self::READ_CARD_INFO => "read_card_info",
            Self::REPEAT => "repeat",
            Self::TAKE_PLC_RESERVATION => "take_plc_reservation",
            Self::RELEASE_PLC_RESERVATION => "release_plc_reservation",
            Self::KEEP_ALIVE => "keep_alive",
            Self::READ_MEMORY_BLOCK => "read_memory_block",
            Self::READ_VARIABLES => "read_variables",
            Self::WRITE_VARIABLES => "write_variables",
            Self::READ_COILS_REGISTERS => "read_coils_registers",
            Self::WRITE_COILS_REGISTERS => "write_coils_registers",
            Self::ENABLE_DISABLE_DATA_DICTIONARY => "enable_disable_data_dictionary",
            Self::INITIALIZE_UPLOAD => "initialize_upload",
            Self::UPLOAD_BLOCK => "upload_block",
            Self::END_STRATEGY_UPLOAD => "end_strategy_upload",
            Self::INITIALIZE_DOWNLOAD => "initialize_download",
            Self::DOWNLOAD_BLOCK => "download_block",
            Self::END_STRATEGY_DOWNLOAD => "end_strategy_download",
            Self::READ_ETH_MASTER_DATA => "read_eth_master_data",
            Self::START_PLC => "start_plc",
            Self::STOP_PLC => "stop_plc",
            Self::MONITOR_PLC => "monitor_plc",
            Self::CHECK_PLC => "check_plc",
            Self::READ_IO_OBJECT => "read_io_object",
            Self::WRITE_IO_OBJECT => "write_io_object",
            Self::GET_STATUS_MODULE => "get_status_module",
            _ => "unknown",
        }
    }

    pub fn is_known(self) -> bool {
        self.name() != "unknown"
    }

    /// The normalized operation of the UMAS function.
    ///
    /// Strategy transfer station -> PLC (UMAS "upload", 0x30-0x32) is a program
    /// download; PLC -> station (UMAS "download", 0x33-0x35) a program upload.
    /// Undocumented or ambiguous codes (repeat, data dictionary, Ethernet master data)
    /// are `other`.
    pub fn operation(self) -> Operation {
        match self {
            Self::INIT_COMM
            | Self::TAKE_PLC_RESERVATION
            | Self::RELEASE_PLC_RESERVATION
            | Self::KEEP_ALIVE => Operation::Session,
            Self::READ_ID
            | Self::READ_PROJECT_INFO
            | Self::READ_PLC_INFO
            | Self::READ_CARD_INFO => Operation::Identify,
            Self::READ_MEMORY_BLOCK
            | Self::READ_VARIABLES
            | Self::READ_COILS_REGISTERS
            | Self::MONITOR_PLC
            | Self::CHECK_PLC
            | Self::READ_IO_OBJECT
            | Self::GET_STATUS_MODULE => Operation::Read,
            Self::WRITE_VARIABLES | Self::WRITE_COILS_REGISTERS | Self::WRITE_IO_OBJECT => {
                Operation::Write
            }
            Self::INITIALIZE_UPLOAD | Self::UPLOAD_BLOCK | Self::END_STRATEGY_UPLOAD => {
                Operation::ProgramDownload
            }
            Self::INITIALIZE_DOWNLOAD | Self::DOWNLOAD_BLOCK | Self::END_STRATEGY_DOWNLOAD => {
                Operation::ProgramUpload
            }
            Self::START_PLC | Self::STOP_PLC => Operation::ModeChange,
            _ => Operation::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_bit_is_stripped_for_names() {
        assert!(FunctionCode(0x83).is_exception());
        assert_eq!(
            FunctionCode(0x83).base(),
            FunctionCode::READ_HOLDING_REGISTERS
        );
        assert_eq!(FunctionCode(0x83).name(), "read_holding_registers");
        assert!(!FunctionCode(0x03).is_exception());
    }

    #[test]
    fn undefined_codes_are_named_unknown() {
        // 9, 10 and 13..=14 are unassigned in the spec; 65 is user-defined.
        for c in [0u8, 9, 10, 13, 14, 18, 19, 25, 42, 65, 0x7F] {
            assert!(!FunctionCode(c).is_known(), "{c}");
            assert_eq!(FunctionCode(c).name(), "unknown");
        }
        assert!(!ExceptionCode(0x07).is_known());
        assert!(!ExceptionCode(0x09).is_known());
        assert_eq!(
            ExceptionCode(0x0B).name(),
            "gateway_target_failed_to_respond"
        );
        assert!(!UmasFunctionCode(0x21).is_known());
        assert_eq!(UmasFunctionCode(0x41).name(), "stop_plc");
    }

    #[test]
    fn every_public_code_has_a_distinct_name() {
        let known: Vec<u8> = (0u8..=0x7F)
            .filter(|c| FunctionCode(*c).is_known())
            .collect();
        assert_eq!(
            known,
            [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43, 90]
        );
        let mut names: Vec<&str> = known.iter().map(|c| FunctionCode(*c).name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), known.len());
    }

    #[test]
    fn umas_operations() {
        use Operation::*;
        let table: [(u8, Operation); 30] = [
            (0x01, Session),
            (0x02, Identify),
            (0x03, Identify),
            (0x04, Identify),
            (0x06, Identify),
            (0x0A, Other),
            (0x10, Session),
            (0x11, Session),
            (0x12, Session),
            (0x20, Read),
            (0x22, Read),
            (0x23, Write),
            (0x24, Read),
            (0x25, Write),
            (0x26, Other),
            (0x30, ProgramDownload),
            (0x31, ProgramDownload),
            (0x32, ProgramDownload),
            (0x33, ProgramUpload),
            (0x34, ProgramUpload),
            (0x35, ProgramUpload),
            (0x39, Other),
            (0x40, ModeChange),
            (0x41, ModeChange),
            (0x50, Read),
            (0x58, Read),
            (0x70, Read),
            (0x71, Write),
            (0x73, Read),
            (0x99, Other),
        ];
        for (code, op) in table {
            assert_eq!(UmasFunctionCode(code).operation(), op, "umas 0x{code:02x}");
        }
    }
}
