//! The `modbus` native block of an event.

use serde::Serialize;

/// Modbus/TCP fields of one ADU. Optional fields are present only where the function
/// has them; `exception_code` is always written (null unless an exception response).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ModbusInfo {
    pub transaction_id: u16,
    pub unit_id: u8,
    /// The function code as on the wire, with the 0x80 exception bit removed.
    pub function_code: u8,
    /// The function's name (`read_holding_registers`, `umas`, `unknown`, ...).
    pub function: &'static str,
    pub exception_code: Option<u8>,
    /// First register/coil/input address (0-based PDU address). On a response, the
    /// address of the request it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u16>,
    /// Register values, or coil/discrete-input states as 0/1, starting at `address`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<u16>>,
    /// The fields of the less common functions (FC 8, 20-23, 43, 90), boxed so that
    /// every Modbus event does not carry their room (they are written in place, after
    /// `values`, as if they were fields of this struct).
    #[serde(flatten)]
    pub more: Option<Box<ModbusMore>>,
}

/// Fields of [`ModbusInfo`] that only some functions have.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ModbusMore {
    /// FC 23: the read half of read/write multiple registers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_address: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_quantity: Option<u16>,
    /// FC 22 mask write register.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub and_mask: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub or_mask: Option<u16>,
    /// FC 8 diagnostics sub-function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_function: Option<u16>,
    /// FC 43 MEI type (13 CANopen general reference, 14 read device identification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mei_type: Option<u8>,
    /// FC 43/14 device identification objects returned by the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<Vec<DeviceIdObject>>,
    /// FC 20/21 file sub-requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_records: Option<Vec<FileRecord>>,
    /// FC 90 (Schneider UMAS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub umas: Option<UmasInfo>,
}

/// What [`ModbusInfo::more`] reads as when the function has none of those fields.
static NO_MORE: ModbusMore = ModbusMore {
    read_address: None,
    read_quantity: None,
    and_mask: None,
    or_mask: None,
    sub_function: None,
    mei_type: None,
    device_id: None,
    file_records: None,
    umas: None,
};

impl ModbusInfo {
    /// The less common fields (all `None` when the function has none).
    pub fn more(&self) -> &ModbusMore {
        self.more.as_deref().unwrap_or(&NO_MORE)
    }

    /// The less common fields, to fill in.
    pub fn more_mut(&mut self) -> &mut ModbusMore {
        self.more.get_or_insert_with(Box::default)
    }
}

/// One object of a Read Device Identification response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceIdObject {
    pub id: u8,
    /// The object's value, lossily decoded as UTF-8.
    pub value: String,
}

/// One sub-request of Read/Write File Record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRecord {
    pub reference_type: u8,
    pub file_number: u16,
    pub record_number: u16,
    pub record_length: u16,
}

/// Schneider Electric UMAS (Modbus function 90) header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UmasInfo {
    pub session_key: u8,
    /// The UMAS function code (on responses: the one of the request; the response
    /// status 0xFE/0xFD goes into `status`).
    pub function_code: u8,
    pub function: &'static str,
    /// 0xFE OK, 0xFD error: responses only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u8>,
}
