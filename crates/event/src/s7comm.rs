//! The `s7comm` and `s7comm_plus` native blocks of an event (Siemens S7 over ISO-on-TCP).

use serde::Serialize;

/// S7comm (protocol id 0x32) fields of one PDU. Optional fields are present only where
/// the PDU carries them, except the function fields the contract requires of every
/// block (shared/spec/output.md): `function_code`, `function_group` and `subfunction`
/// are always written, `null` where the PDU has none (a userdata's `function_code`, a
/// job's group) or could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct S7commInfo {
    /// 1 job, 2 ack, 3 ack_data, 7 userdata.
    pub rosctr: u8,
    pub pdu_ref: u16,
    /// The parameter's function byte (job and ack_data), e.g. 0x05 write var, 0x1a
    /// request download, 0x29 PLC stop.
    pub function_code: Option<u8>,
    /// The function's name (`write_var`, `request_download`, `plc_stop`, `szl_read`,
    /// `unknown`, ...); for userdata the subfunction's.
    pub function: &'static str,
    /// Userdata: the function group (4 CPU functions, 5 security, ...) and subfunction.
    pub function_group: Option<u8>,
    pub subfunction: Option<u8>,
    /// Header error class and code (ack, ack_data); for userdata the parameter's
    /// error code in `error_code`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u8>,
    /// Read var / write var items. On an ack_data, the items of the job it answers,
    /// with the return code of each (and the data read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<S7Item>>,
    /// Download / upload / block functions: the block concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<S7Block>,
    /// PI service: its name as sent (`_INSE`, `_DELE`, `P_PROGRAM`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pi_service: Option<String>,
    /// SZL read: the list id and index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub szl_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub szl_index: Option<u16>,
    /// What an SZL response says about the CPU (inventory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<S7Identity>,
    /// Security (password): `s7:` and a stable hash of the password bytes as sent,
    /// never the password itself. Matched by `[[credentials]] user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// COTP connection request TSAPs of the flow (rack/slot are in the called TSAP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calling_tsap: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub called_tsap: Option<u16>,
}

/// One variable item (any-pointer, syntax id 0x10).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct S7Item {
    /// Area code: 0x81 I, 0x82 Q, 0x83 M, 0x84 DB, 0x1c counters, 0x1d timers, ...
    pub area: u8,
    /// `I`, `Q`, `M`, `DB`, `DI`, `L`, `V`, `C`, `T`, `P`, or `unknown`.
    pub area_name: &'static str,
    /// Data block number (0 outside DB/DI).
    pub db: u16,
    /// Byte address and bit (the any-pointer's 24-bit address is byte << 3 | bit).
    pub address: u32,
    pub bit: u8,
    /// Transport size of the item (1 bit, 2 byte, 4 word, ...).
    pub transport_size: u8,
    /// Count of elements of `transport_size`.
    pub length: u16,
    /// Write var: the bytes written; read var ack_data: the bytes read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<u8>>,
    /// Ack_data: the item's return code (0xff success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_code: Option<u8>,
}

/// A program block named by a download, upload or block function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S7Block {
    /// `OB`, `DB`, `SDB`, `FC`, `SFC`, `FB`, `SFB`, or the type byte in hex.
    pub block_type: String,
    /// The block number as sent (five ASCII digits).
    pub number: String,
}

/// The CPU's identity from SZL responses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct S7Identity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_name: Option<String>,
}

/// S7comm-plus (protocol id 0x72, S7-1200/1500) fields of one PDU.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct S7commPlusInfo {
    /// Protocol version byte (0x01, 0x02, 0x03; 0xfe for system events).
    pub protocol_version: u8,
    /// 0x31 request, 0x32 response, 0x33 notification, ...
    pub opcode: u8,
    /// The function (0x04ca CreateObject, 0x04f2 SetVariable, ...) of requests and
    /// responses, V3 ones included (it follows their integrity digest). Always
    /// serialised: null for what carries none on the wire (notifications,
    /// keep-alives, system events, TLS) or could not be parsed.
    pub function_code: Option<u16>,
    pub function: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<u32>,
    /// The frame is integrity-protected (V3: a digest precedes the data, which is
    /// still parsed) or a TLS record (encrypted, not parsed).
    pub protected: bool,
}
