//! Open code sets of OPC UA: message types, service (binary-encoding) NodeIds, identity
//! token encodings, status codes. Unknown values parse and travel on.
//!
//! Service ids are the numeric identifiers, in namespace 0, of the
//! `<Service>Request_Encoding_DefaultBinary` and `<Service>Response_Encoding_DefaultBinary`
//! objects of the OPC Foundation's NodeIds.csv (Part 6, 5.2.2.15: an encodeable object
//! in a message body is preceded by the NodeId of its binary encoding). For every
//! standard service the response id is the request id + 3.

use otwatch_event::Operation;

/// The three-letter message type of the UA TCP header (Part 6, 7.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType(pub [u8; 3]);

impl MessageType {
    pub const HELLO: MessageType = MessageType(*b"HEL");
    pub const ACKNOWLEDGE: MessageType = MessageType(*b"ACK");
    pub const ERROR: MessageType = MessageType(*b"ERR");
    pub const REVERSE_HELLO: MessageType = MessageType(*b"RHE");
    pub const OPEN: MessageType = MessageType(*b"OPN");
    pub const CLOSE: MessageType = MessageType(*b"CLO");
    pub const MESSAGE: MessageType = MessageType(*b"MSG");

    /// The message type as written in events; `None` for a type UA TCP does not define.
    pub fn name(self) -> Option<&'static str> {
        Some(match &self.0 {
            b"HEL" => "HEL",
            b"ACK" => "ACK",
            b"ERR" => "ERR",
            b"RHE" => "RHE",
            b"OPN" => "OPN",
            b"CLO" => "CLO",
            b"MSG" => "MSG",
            _ => return None,
        })
    }

    /// Messages of the secure conversation layer (they carry a secure channel id and
    /// may be split into chunks).
    pub fn is_secure(self) -> bool {
        matches!(&self.0, b"OPN" | b"CLO" | b"MSG")
    }

    /// The smallest legal message size, header included: HEL 8 + 20 + 4 (empty URL),
    /// ACK 8 + 20, ERR 8 + 4 + 4, RHE 8 + 4 + 4, OPN 8 + 4 + 12 + 8, CLO/MSG
    /// 8 + 4 + 4 + 8.
    pub fn min_size(self) -> u32 {
        match &self.0 {
            b"HEL" => 32,
            b"ACK" => 28,
            b"ERR" | b"RHE" => 16,
            b"OPN" => 32,
            _ => 24,
        }
    }
}

/// The chunk type byte of the UA TCP header: `F` final, `C` intermediate, `A` abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkType(pub u8);

impl ChunkType {
    pub const FINAL: ChunkType = ChunkType(b'F');
    pub const INTERMEDIATE: ChunkType = ChunkType(b'C');
    pub const ABORT: ChunkType = ChunkType(b'A');

    /// Whether this chunk type is legal for the message type (only OPN, CLO and MSG
    /// may be chunked; Part 6, 7.1.2.2).
    pub fn is_legal_for(self, ty: MessageType) -> bool {
        match self.0 {
            b'F' => true,
            b'C' | b'A' => ty.is_secure(),
            _ => false,
        }
    }
}

/// The numeric identifier (namespace 0) of an encodeable object's binary encoding: for
/// a message body, the service request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub u32);

/// What kind of body a service id announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Request,
    Response,
    /// `ServiceFault`: the response to any request that failed.
    Fault,
}

macro_rules! services {
    ($( $req:literal $resp:literal $name:literal $op:ident; )*) => {
        /// (request id, response id, service name, operation).
        const SERVICES: &[(u32, u32, &str, Operation)] = &[
            $( ($req, $resp, $name, Operation::$op), )*
        ];
    };
}

// Part 4 services; ids from NodeIds.csv. The operation is the normalized language of
// docs/protocols.md (OPC UA section).
services! {
    422 425 "FindServers" Identify;
    12208 12209 "FindServersOnNetwork" Identify;
    428 431 "GetEndpoints" Identify;
    437 440 "RegisterServer" Identify;
    12211 12212 "RegisterServer2" Identify;
    446 449 "OpenSecureChannel" Session;
    452 455 "CloseSecureChannel" Session;
    461 464 "CreateSession" Session;
    467 470 "ActivateSession" Session;
    473 476 "CloseSession" Session;
    479 482 "Cancel" Other;
    488 491 "AddNodes" Write;
    494 497 "AddReferences" Write;
    500 503 "DeleteNodes" Write;
    506 509 "DeleteReferences" Write;
    527 530 "Browse" Read;
    533 536 "BrowseNext" Read;
    554 557 "TranslateBrowsePathsToNodeIds" Read;
    560 563 "RegisterNodes" Read;
    566 569 "UnregisterNodes" Read;
    615 618 "QueryFirst" Read;
    621 624 "QueryNext" Read;
    631 634 "Read" Read;
    664 667 "HistoryRead" Read;
    673 676 "Write" Write;
    700 703 "HistoryUpdate" Write;
    712 715 "Call" Other;
    751 754 "CreateMonitoredItems" Read;
    763 766 "ModifyMonitoredItems" Read;
    769 772 "SetMonitoringMode" Read;
    775 778 "SetTriggering" Read;
    781 784 "DeleteMonitoredItems" Read;
    787 790 "CreateSubscription" Read;
    793 796 "ModifySubscription" Read;
    799 802 "SetPublishingMode" Read;
    826 829 "Publish" Read;
    832 835 "Republish" Read;
    841 844 "TransferSubscriptions" Read;
    847 850 "DeleteSubscriptions" Read;
    410 413 "TestStack" Diagnostic;
    416 419 "TestStackEx" Diagnostic;
}

/// Names of the request and response encodings, built from [`SERVICES`] at compile
/// time would need const string concatenation; they are spelled out instead.
const NAMES: &[(u32, &str)] = &[
    (397, "ServiceFault"),
    (422, "FindServersRequest"),
    (425, "FindServersResponse"),
    (12208, "FindServersOnNetworkRequest"),
    (12209, "FindServersOnNetworkResponse"),
    (428, "GetEndpointsRequest"),
    (431, "GetEndpointsResponse"),
    (437, "RegisterServerRequest"),
    (440, "RegisterServerResponse"),
    (12211, "RegisterServer2Request"),
    (12212, "RegisterServer2Response"),
    (446, "OpenSecureChannelRequest"),
    (449, "OpenSecureChannelResponse"),
    (452, "CloseSecureChannelRequest"),
    (455, "CloseSecureChannelResponse"),
    (461, "CreateSessionRequest"),
    (464, "CreateSessionResponse"),
    (467, "ActivateSessionRequest"),
    (470, "ActivateSessionResponse"),
    (473, "CloseSessionRequest"),
    (476, "CloseSessionResponse"),
    (479, "CancelRequest"),
    (482, "CancelResponse"),
    (488, "AddNodesRequest"),
    (491, "AddNodesResponse"),
    (494, "AddReferencesRequest"),
    (497, "AddReferencesResponse"),
    (500, "DeleteNodesRequest"),
    (503, "DeleteNodesResponse"),
    (506, "DeleteReferencesRequest"),
    (509, "DeleteReferencesResponse"),
    (527, "BrowseRequest"),
    (530, "BrowseResponse"),
    (533, "BrowseNextRequest"),
    (536, "BrowseNextResponse"),
    (554, "TranslateBrowsePathsToNodeIdsRequest"),
    (557, "TranslateBrowsePathsToNodeIdsResponse"),
    (560, "RegisterNodesRequest"),
    (563, "RegisterNodesResponse"),
    (566, "UnregisterNodesRequest"),
    (569, "UnregisterNodesResponse"),
    (615, "QueryFirstRequest"),
    (618, "QueryFirstResponse"),
    (621, "QueryNextRequest"),
    (624, "QueryNextResponse"),
    (631, "ReadRequest"),
    (634, "ReadResponse"),
    (664, "HistoryReadRequest"),
    (667, "HistoryReadResponse"),
    (673, "WriteRequest"),
    (676, "WriteResponse"),
    (700, "HistoryUpdateRequest"),
    (703, "HistoryUpdateResponse"),
    (712, "CallRequest"),
    (715, "CallResponse"),
    (751, "CreateMonitoredItemsRequest"),
    (754, "CreateMonitoredItemsResponse"),
    (763, "ModifyMonitoredItemsRequest"),
    (766, "ModifyMonitoredItemsResponse"),
    (769, "SetMonitoringModeRequest"),
    (772, "SetMonitoringModeResponse"),
    (775, "SetTriggeringRequest"),
    (778, "SetTriggeringResponse"),
    (781, "DeleteMonitoredItemsRequest"),
    (784, "DeleteMonitoredItemsResponse"),
    (787, "CreateSubscriptionRequest"),
    (790, "CreateSubscriptionResponse"),
    (793, "ModifySubscriptionRequest"),
    (796, "ModifySubscriptionResponse"),
    (799, "SetPublishingModeRequest"),
    (802, "SetPublishingModeResponse"),
    (826, "PublishRequest"),
    (829, "PublishResponse"),
    (832, "RepublishRequest"),
    (835, "RepublishResponse"),
    (841, "TransferSubscriptionsRequest"),
    (844, "TransferSubscriptionsResponse"),
    (847, "DeleteSubscriptionsRequest"),
    (850, "DeleteSubscriptionsResponse"),
    (410, "TestStackRequest"),
    (413, "TestStackResponse"),
    (416, "TestStackExRequest"),
    (419, "TestStackExResponse"),
];

impl ServiceId {
    pub const SERVICE_FAULT: ServiceId = ServiceId(397);
    pub const OPEN_SECURE_CHANNEL_REQUEST: ServiceId = ServiceId(446);
    pub const OPEN_SECURE_CHANNEL_RESPONSE: ServiceId = ServiceId(449);
    pub const CLOSE_SECURE_CHANNEL_REQUEST: ServiceId = ServiceId(452);
    pub const CREATE_SESSION_REQUEST: ServiceId = ServiceId(461);
    pub const ACTIVATE_SESSION_REQUEST: ServiceId = ServiceId(467);
    pub const ADD_NODES_REQUEST: ServiceId = ServiceId(488);
    pub const ADD_REFERENCES_REQUEST: ServiceId = ServiceId(494);
    pub const DELETE_NODES_REQUEST: ServiceId = ServiceId(500);
    pub const DELETE_REFERENCES_REQUEST: ServiceId = ServiceId(506);
    pub const READ_REQUEST: ServiceId = ServiceId(631);
    pub const WRITE_REQUEST: ServiceId = ServiceId(673);
    pub const WRITE_RESPONSE: ServiceId = ServiceId(676);
    pub const CALL_REQUEST: ServiceId = ServiceId(712);
    /// Publish requests are queued by the server and answered as notifications are
    /// due (Part 4, 5.13.5), in their own order, not in the order of the others.
    pub const PUBLISH_REQUEST: ServiceId = ServiceId(826);
    pub const PUBLISH_RESPONSE: ServiceId = ServiceId(829);

    /// The encoding's name (`WriteRequest`), `None` for an id no standard service uses.
    pub fn name(self) -> Option<&'static str> {
        NAMES
            .iter()
            .find(|(id, _)| *id == self.0)
            .map(|(_, name)| *name)
    }

    /// Request, response or fault; `None` for an unknown id.
    pub fn kind(self) -> Option<ServiceKind> {
        if self == Self::SERVICE_FAULT {
            return Some(ServiceKind::Fault);
        }
        SERVICES.iter().find_map(|(req, resp, _, _)| {
            if *req == self.0 {
                Some(ServiceKind::Request)
            } else if *resp == self.0 {
                Some(ServiceKind::Response)
            } else {
                None
            }
        })
    }

    /// The normalized operation of the service (request or response); `None` for
    /// ServiceFault and unknown ids.
    pub fn operation(self) -> Option<Operation> {
        SERVICES
            .iter()
            .find(|(req, resp, _, _)| *req == self.0 || *resp == self.0)
            .map(|(_, _, _, op)| *op)
    }

    /// The response id that answers this request id.
    pub fn response_of(self) -> Option<ServiceId> {
        SERVICES
            .iter()
            .find(|(req, _, _, _)| *req == self.0)
            .map(|(_, resp, _, _)| ServiceId(*resp))
    }

    /// Every standard request/response pair (for tests and documentation).
    pub fn all_pairs() -> impl Iterator<Item = (ServiceId, ServiceId, &'static str)> {
        SERVICES
            .iter()
            .map(|(req, resp, name, _)| (ServiceId(*req), ServiceId(*resp), *name))
    }
}

/// The binary encoding ids of the user identity tokens of ActivateSession (Part 4,
/// 7.36; NodeIds.csv). Some stacks send the DataType id instead of its encoding's id;
/// both are recognised.
pub fn identity_token_type(type_id: u32) -> Option<&'static str> {
    Some(match type_id {
        321 | 319 => "anonymous",
        324 | 322 => "username",
        327 | 325 => "x509",
        940 | 938 => "issued",
        _ => return None,
    })
}

/// The attribute id of the Value attribute (Part 6, A.1).
pub const ATTRIBUTE_VALUE: u32 = 13;

/// The URI prefix of every standard security policy.
pub const SECURITY_POLICY_PREFIX: &str = "http://opcfoundation.org/UA/SecurityPolicy#";

/// Whether a security policy URI is the `None` policy (no signing, no encryption).
pub fn is_policy_none(uri: &str) -> bool {
    uri == "http://opcfoundation.org/UA/SecurityPolicy#None"
}

/// Length of the symmetric signature that trails each chunk of a signed channel, by
/// policy (Part 7 security policies: HMAC-SHA1 for Basic128Rsa15 and Basic256,
/// HMAC-SHA256 for the others). 0 when unknown.
pub fn symmetric_signature_len(uri: &str) -> usize {
    match uri.strip_prefix(SECURITY_POLICY_PREFIX) {
        Some("Basic128Rsa15" | "Basic256") => 20,
        Some("Basic256Sha256" | "Aes128_Sha256_RsaOaep" | "Aes256_Sha256_RsaPss") => 32,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_has_names_and_pairs() {
        let mut n = 0;
        for (req, resp, name) in ServiceId::all_pairs() {
            n += 1;
            assert_eq!(req.name(), Some(format!("{name}Request").as_str()));
            assert_eq!(resp.name(), Some(format!("{name}Response").as_str()));
            assert_eq!(req.kind(), Some(ServiceKind::Request));
            assert_eq!(resp.kind(), Some(ServiceKind::Response));
            assert_eq!(req.response_of(), Some(resp));
            assert_eq!(req.operation(), resp.operation());
            // The NodeIds.csv pattern: DataType, XML, Binary for the request, then the
            // same three for the response.
            assert_eq!(resp.0, req.0 + if req.0 > 12000 { 1 } else { 3 });
        }
        assert_eq!(n, 41);
        assert_eq!(NAMES.len(), 2 * n + 1);
        assert_eq!(ServiceId(397).kind(), Some(ServiceKind::Fault));
        assert_eq!(ServiceId(398).name(), None);
        assert_eq!(ServiceId(398).kind(), None);
    }

    #[test]
    fn operations_follow_the_spec_table() {
        use Operation::*;
        for (id, op) in [
            (673, Write),
            (676, Write),
            (488, Write),
            (500, Write),
            (494, Write),
            (506, Write),
            (700, Write),
            (712, Other),
            (461, Session),
            (467, Session),
            (473, Session),
            (631, Read),
            (527, Read),
            (533, Read),
            (554, Read),
            (787, Read),
            (751, Read),
            (826, Read),
            (664, Read),
            (428, Identify),
            (422, Identify),
        ] {
            assert_eq!(ServiceId(id).operation(), Some(op), "{id}");
        }
    }

    #[test]
    fn message_and_chunk_types() {
        assert_eq!(MessageType(*b"MSG").name(), Some("MSG"));
        assert_eq!(MessageType(*b"XYZ").name(), None);
        assert!(ChunkType(b'C').is_legal_for(MessageType::MESSAGE));
        assert!(!ChunkType(b'C').is_legal_for(MessageType::HELLO));
        assert!(!ChunkType(b'X').is_legal_for(MessageType::MESSAGE));
        assert_eq!(identity_token_type(324), Some("username"));
        assert_eq!(identity_token_type(1), None);
        assert!(is_policy_none(
            "http://opcfoundation.org/UA/SecurityPolicy#None"
        ));
        assert_eq!(
            symmetric_signature_len("http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256"),
            32
        );
    }
}
