//! The `dnp3` native block of an event (IEEE 1815 over TCP or UDP).

use serde::Serialize;

/// DNP3 fields of one application-layer PDU (a reassembled transport fragment).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Dnp3Info {
    /// Link-layer source and destination addresses.
    pub link_src: u16,
    pub link_dst: u16,
    /// Link-layer DIR bit: set on frames from the master.
    pub from_master: bool,
    /// Application function code (0x00 confirm ... 0x81 response, 0x82 unsolicited).
    pub function_code: u8,
    /// The function's name (`read`, `direct_operate`, `cold_restart`, `response`, ...).
    pub function: &'static str,
    /// Application control: sequence number, and the FIR/FIN/CON/UNS bits.
    pub sequence: u8,
    pub fir: bool,
    pub fin: bool,
    pub con: bool,
    pub uns: bool,
    /// Internal indications (responses only), IIN1 in the high byte. Always written
    /// (the contract requires it of responses): `null` on requests, and on a response
    /// too short to hold them.
    pub iin: Option<u16>,
    /// Object headers, in order.
    pub objects: Vec<Dnp3Object>,
    /// Point values decoded from the objects that matter to detection and inventory
    /// (g12 CROB, g41 analog output, g40/g30 analog, g10/g1 binary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<Vec<Dnp3Point>>,
    /// g70 file control: the file name, and the open mode where given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u16>,
    /// g50 time (milliseconds since the epoch), as written or reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<u64>,
    /// g0 device attributes (variation, value as text), for the inventory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Vec<Dnp3Attribute>>,
}

/// One object header.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Dnp3Object {
    pub group: u8,
    pub variation: u8,
    pub qualifier: u8,
    /// Objects (or the range's size) the header covers.
    pub count: u32,
    /// Start and stop index of a range qualifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<u32>,
}

/// One decoded point.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Dnp3Point {
    pub group: u8,
    pub variation: u8,
    pub index: u32,
    /// The value (analog), or the state 0/1 (binary); absent for a CROB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// CROB control code (g12).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_code: Option<u8>,
    /// Status or flags byte, where the object has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u8>,
}

/// One g0 device attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dnp3Attribute {
    pub variation: u8,
    pub value: String,
}
