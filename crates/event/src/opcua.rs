//! The `opcua` native block of an event (OPC UA binary over UA TCP).

use serde::Serialize;

/// OPC UA fields of one message (a whole message: chunks reassembled).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct OpcuaInfo {
    /// `HEL`, `ACK`, `ERR`, `RHE`, `OPN`, `CLO`, `MSG`.
    pub message_type: &'static str,
    /// The channel's security mode: `none`, `sign`, `sign_and_encrypt`, `unknown`.
    pub security_mode: &'static str,
    /// The body could not be read (an encrypted channel): no service was decoded.
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure_channel_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<u32>,
    /// OPN: the security policy URI, and the SHA-1 thumbprints (hex) of the sender's
    /// certificate and of the receiver's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_certificate_thumbprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver_certificate_thumbprint: Option<String>,
    /// HEL: the endpoint URL asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// HEL and ACK: the buffer sizes and limits asked for (HEL) and granted (ACK).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive_buffer_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_buffer_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_chunk_count: Option<u32>,
    /// ERR: the error's status code; a response: its service result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u32>,
    /// MSG: the request handle pairing a request with its response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_handle: Option<u32>,
    /// MSG: the numeric binary-encoding NodeId of the request or response type (e.g.
    /// 673 WriteRequest) and its name. Always written (the contract requires them of
    /// decodable MSG chunks): `null` for other messages, for an encrypted or
    /// undecodable chunk, and (`service`) for a type that is no standard service.
    pub service_id: Option<u32>,
    pub service: Option<&'static str>,
    /// Nodes written (Write), called (Call: the object, with `method`), added or
    /// deleted (AddNodes, DeleteNodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<OpcuaNode>>,
    /// ActivateSession: the identity token's type (`anonymous`, `username`, `x509`,
    /// `issued`) and, for `username`, the user name. Matched by `[[credentials]] user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// CreateSession: the client's application description (inventory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<OpcuaApplication>,
}

/// One node a service acts on.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct OpcuaNode {
    /// The NodeId in its canonical string form (`ns=2;s=Boiler1.SetPoint`, `i=2253`;
    /// namespace 0 is left out).
    pub node_id: String,
    /// Write: the attribute written (13 = Value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_id: Option<u32>,
    /// Write: the value written, where it is of a numeric, boolean or string type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<OpcuaValue>,
    /// Call: the method called on this object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// A Variant value, as far as detections need it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OpcuaValue {
    Bool(bool),
    Number(f64),
    Text(String),
    Numbers(Vec<f64>),
    Texts(Vec<String>),
}

/// A CreateSession client's application description.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct OpcuaApplication {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
}
