//! Service bodies (Part 4 services in the Part 6 binary encoding): the type NodeId, the
//! request or response header, and the fields events carry for Write, Call, AddNodes,
//! DeleteNodes, AddReferences, DeleteReferences, CreateSession, ActivateSession and
//! OpenSecureChannel.

use nom::number::complete as nc;
use otwatch_event::{OpcuaApplication, OpcuaInfo, OpcuaNode};

use crate::codes::{identity_token_type, ServiceId, ServiceKind};
use crate::parser::{
    array_len, data_value, expanded_node_id, extension_object, localized_text, node_id,
    qualified_name, request_header, response_header_rest, response_header_start, ua_string,
    variant, DissectError, PResult, VariantValue,
};

/// What the body of a plaintext OPN, CLO or MSG message said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServiceOutcome {
    pub id: ServiceId,
    /// `None` for an id no standard service uses.
    pub kind: Option<ServiceKind>,
}

/// Reads the type NodeId at the front of a message body: a namespace-0 numeric id.
pub(crate) fn service_type(body: &[u8]) -> PResult<'_, ServiceId> {
    let (i, type_id) = node_id(body)?;
    match type_id.ns0_numeric() {
        Some(n) => Ok((i, ServiceId(n))),
        None => Err(nom::Err::Error(DissectError::BadEncoding)),
    }
}

/// Whether a message body starts like plaintext: a type NodeId of a standard service
/// (the test that tells a signed-only channel from an encrypted one).
pub(crate) fn looks_plaintext(body: &[u8]) -> bool {
    matches!(service_type(body), Ok((_, id)) if id.kind().is_some())
}

fn text(s: Option<&[u8]>) -> Option<String> {
    s.map(|s| String::from_utf8_lossy(s).into_owned())
}

/// Decodes a message body into `info` (service id and name, request handle, status,
/// nodes, identity, application). Fields decoded before an error stay in `info`; the
/// error says where decoding stopped. `max_nodes` bounds the nodes reported.
pub(crate) fn decode_service(
    body: &[u8],
    info: &mut OpcuaInfo,
    max_nodes: usize,
) -> Result<ServiceOutcome, (Option<ServiceOutcome>, DissectError)> {
    let err = |o: Option<ServiceOutcome>| {
        move |e: nom::Err<DissectError>| match e {
            nom::Err::Error(e) | nom::Err::Failure(e) => (o, e),
            nom::Err::Incomplete(_) => (o, DissectError::Truncated),
        }
    };
    let (i, id) = service_type(body).map_err(err(None))?;
    let outcome = ServiceOutcome {
        id,
        kind: id.kind(),
    };
    info.service_id = Some(id.0);
    info.service = id.name();
    let o = Some(outcome);
    match outcome.kind {
        None => {}
        Some(ServiceKind::Request) => {
            let (i, header) = request_header(i).map_err(err(o))?;
            info.request_handle = Some(header.request_handle);
            decode_request(id, i, info, max_nodes).map_err(err(o))?;
        }
        Some(ServiceKind::Response | ServiceKind::Fault) => {
            let (i, header) = response_header_start(i).map_err(err(o))?;
            info.request_handle = Some(header.request_handle);
            info.status_code = Some(header.service_result);
            if id == ServiceId::OPEN_SECURE_CHANNEL_RESPONSE {
                let (i, ()) = response_header_rest(i).map_err(err(o))?;
                // ServerProtocolVersion, then the SecurityToken: ChannelId, TokenId.
                let (i, _version) = nc::le_u32(i).map_err(err(o))?;
                let (i, _channel) = nc::le_u32(i).map_err(err(o))?;
                let (_, token) = nc::le_u32(i).map_err(err(o))?;
                info.token_id = Some(token);
            }
        }
    }
    Ok(outcome)
}

/// Collects up to `max` nodes from an array of `item`s (each consuming at least one
/// byte, so the loop is bounded by the input).
fn nodes_of<'a>(
    i: &'a [u8],
    info: &mut OpcuaInfo,
    max: usize,
    mut item: impl FnMut(&'a [u8]) -> PResult<'a, OpcuaNode>,
) -> PResult<'a, ()> {
    let (mut i, n) = array_len(i, 1)?;
    let nodes = info.nodes.get_or_insert_with(Vec::new);
    for _ in 0..n {
        let (rest, node) = item(i)?;
        i = rest;
        if nodes.len() < max {
            nodes.push(node);
        } else {
            // The rest is not reported: stop reading (the bound is on work too).
            break;
        }
    }
    Ok((i, ()))
}

fn decode_request<'a>(
    id: ServiceId,
    i: &'a [u8],
    info: &mut OpcuaInfo,
    max: usize,
) -> PResult<'a, ()> {
    match id {
        // WriteValue: NodeId, AttributeId, IndexRange, DataValue.
        ServiceId::WRITE_REQUEST => nodes_of(i, info, max, |i| {
            let (i, node) = node_id(i)?;
            let (i, attribute_id) = nc::le_u32(i)?;
            let (i, _range) = ua_string(i)?;
            let (i, value) = data_value(i, 0)?;
            Ok((
                i,
                OpcuaNode {
                    node_id: node.to_string(),
                    attribute_id: Some(attribute_id),
                    value: match value {
                        VariantValue::Value(v) => Some(v),
                        VariantValue::Other => None,
                    },
                    method: None,
                },
            ))
        }),
        // CallMethodRequest: ObjectId, MethodId, InputArguments (Variant[]).
        ServiceId::CALL_REQUEST => nodes_of(i, info, max, |i| {
            let (i, object) = node_id(i)?;
            let (i, method) = node_id(i)?;
            let (mut i, n) = array_len(i, 1)?;
            for _ in 0..n {
                i = variant(i, 0)?.0;
            }
            Ok((
                i,
                OpcuaNode {
                    node_id: object.to_string(),
                    method: Some(method.to_string()),
                    ..OpcuaNode::default()
                },
            ))
        }),
        // AddNodesItem: ParentNodeId, ReferenceTypeId, RequestedNewNodeId, BrowseName,
        // NodeClass, NodeAttributes, TypeDefinition.
        ServiceId::ADD_NODES_REQUEST => nodes_of(i, info, max, |i| {
            let (i, _parent) = expanded_node_id(i)?;
            let (i, _reference) = node_id(i)?;
            let (i, requested) = expanded_node_id(i)?;
            let (i, _name) = qualified_name(i)?;
            let (i, _class) = nc::le_u32(i)?;
            let (i, _attributes) = extension_object(i)?;
            let (i, _type_definition) = expanded_node_id(i)?;
            Ok((
                i,
                OpcuaNode {
                    node_id: requested.to_string(),
                    ..OpcuaNode::default()
                },
            ))
        }),
        // DeleteNodesItem: NodeId, DeleteTargetReferences.
        ServiceId::DELETE_NODES_REQUEST => nodes_of(i, info, max, |i| {
            let (i, node) = node_id(i)?;
            let (i, _targets) = nc::u8(i)?;
            Ok((
                i,
                OpcuaNode {
                    node_id: node.to_string(),
                    ..OpcuaNode::default()
                },
            ))
        }),
        // AddReferencesItem: SourceNodeId, ReferenceTypeId, IsForward, TargetServerUri,
        // TargetNodeId, TargetNodeClass.
        ServiceId::ADD_REFERENCES_REQUEST => nodes_of(i, info, max, |i| {
            let (i, source) = node_id(i)?;
            let (i, _reference) = node_id(i)?;
            let (i, _forward) = nc::u8(i)?;
            let (i, _uri) = ua_string(i)?;
            let (i, _target) = expanded_node_id(i)?;
            let (i, _class) = nc::le_u32(i)?;
            Ok((
                i,
                OpcuaNode {
                    node_id: source.to_string(),
                    ..OpcuaNode::default()
                },
            ))
        }),
        // DeleteReferencesItem: SourceNodeId, ReferenceTypeId, IsForward, TargetNodeId,
        // DeleteBidirectional.
        ServiceId::DELETE_REFERENCES_REQUEST => nodes_of(i, info, max, |i| {
            let (i, source) = node_id(i)?;
            let (i, _reference) = node_id(i)?;
            let (i, _forward) = nc::u8(i)?;
            let (i, _target) = expanded_node_id(i)?;
            let (i, _both) = nc::u8(i)?;
            Ok((
                i,
                OpcuaNode {
                    node_id: source.to_string(),
                    ..OpcuaNode::default()
                },
            ))
        }),
        // ApplicationDescription: ApplicationUri, ProductUri, ApplicationName, ...
        ServiceId::CREATE_SESSION_REQUEST => {
            let (i, application_uri) = ua_string(i)?;
            let (i, product_uri) = ua_string(i)?;
            let (i, application_name) = localized_text(i)?;
            info.application = Some(OpcuaApplication {
                application_uri: text(application_uri),
                product_uri: text(product_uri),
                application_name: text(application_name),
            });
            Ok((i, ()))
        }
        // ClientSignature (SignatureData: Algorithm, Signature), ClientSoftwareCertificates
        // (SignedSoftwareCertificate[]: CertificateData, Signature), LocaleIds (String[]),
        // UserIdentityToken (ExtensionObject).
        ServiceId::ACTIVATE_SESSION_REQUEST => {
            let (i, _algorithm) = ua_string(i)?;
            let (i, _signature) = ua_string(i)?;
            let (mut i, n) = array_len(i, 8)?;
            for _ in 0..n {
                i = ua_string(i)?.0;
                i = ua_string(i)?.0;
            }
            let (mut i, n) = array_len(i, 4)?;
            for _ in 0..n {
                i = ua_string(i)?.0;
            }
            let (i, token) = extension_object(i)?;
            let type_id = token.type_id.ns0_numeric().unwrap_or(0);
            info.token_type = identity_token_type(type_id);
            if info.token_type == Some("username") {
                // UserNameIdentityToken: PolicyId, UserName, Password, EncryptionAlgorithm.
                if let Some(body) = token.body {
                    let (b, _policy) = ua_string(body)?;
                    let (_, user) = ua_string(b)?;
                    info.user = text(user);
                }
            }
            Ok((i, ()))
        }
        _ => Ok((i, ())),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use otwatch_event::OpcuaValue;

    /// A RequestHeader (Part 4, 7.28) with the given handle: AuthenticationToken
    /// (two-byte NodeId 0), Timestamp 0, RequestHandle, ReturnDiagnostics 0,
    /// AuditEntryId null, TimeoutHint 10000, AdditionalHeader (NodeId 0, no body).
    pub(crate) fn request_header_bytes(handle: u32) -> Vec<u8> {
        let mut v = vec![0x00, 0x00];
        v.extend_from_slice(&0i64.to_le_bytes());
        v.extend_from_slice(&handle.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&(-1i32).to_le_bytes());
        v.extend_from_slice(&10_000u32.to_le_bytes());
        v.extend_from_slice(&[0x00, 0x00, 0x00]);
        v
    }

    /// A ResponseHeader: Timestamp 0, RequestHandle, ServiceResult, ServiceDiagnostics
    /// (mask 0), StringTable (empty), AdditionalHeader (NodeId 0, no body).
    pub(crate) fn response_header_bytes(handle: u32, result: u32) -> Vec<u8> {
        let mut v = 0i64.to_le_bytes().to_vec();
        v.extend_from_slice(&handle.to_le_bytes());
        v.extend_from_slice(&result.to_le_bytes());
        v.push(0x00);
        v.extend_from_slice(&0i32.to_le_bytes());
        v.extend_from_slice(&[0x00, 0x00, 0x00]);
        v
    }

    /// The type NodeId of a service in the four-byte encoding: 0x01, ns 0, id (LE u16).
    pub(crate) fn type_id(id: u16) -> Vec<u8> {
        let [lo, hi] = id.to_le_bytes();
        vec![0x01, 0x00, lo, hi]
    }

    pub(crate) fn ua_str(s: &[u8]) -> Vec<u8> {
        let mut v = (s.len() as i32).to_le_bytes().to_vec();
        v.extend_from_slice(s);
        v
    }

    /// WriteRequest (673): two WriteValues, ns=2;s=Line1.Speed Value = Double 42.5,
    /// and i=2253 attribute 13 = Int32[] {1, 2}.
    pub(crate) fn write_request(handle: u32) -> Vec<u8> {
        let mut v = type_id(673);
        v.extend(request_header_bytes(handle));
        v.extend_from_slice(&2i32.to_le_bytes()); // NodesToWrite: 2
                                                  // [0] NodeId: string (0x03), ns 2, "Line1.Speed".
        v.extend_from_slice(&[0x03, 0x02, 0x00]);
        v.extend(ua_str(b"Line1.Speed"));
        v.extend_from_slice(&13u32.to_le_bytes()); // AttributeId: Value
        v.extend_from_slice(&(-1i32).to_le_bytes()); // IndexRange: null
        v.push(0x01); // DataValue mask: Value
        v.push(11); // Variant: Double
        v.extend_from_slice(&42.5f64.to_le_bytes());
        // [1] NodeId: numeric (0x02), ns 0, 2253.
        v.extend_from_slice(&[0x02, 0x00, 0x00]);
        v.extend_from_slice(&2253u32.to_le_bytes());
        v.extend_from_slice(&13u32.to_le_bytes());
        v.extend_from_slice(&(-1i32).to_le_bytes());
        v.push(0x05); // DataValue mask: Value, SourceTimestamp
        v.push(0x86); // Variant: array of Int32
        v.extend_from_slice(&2i32.to_le_bytes());
        v.extend_from_slice(&1i32.to_le_bytes());
        v.extend_from_slice(&2i32.to_le_bytes());
        v.extend_from_slice(&0i64.to_le_bytes()); // SourceTimestamp
        v
    }

    #[test]
    fn write_request_nodes_and_values() {
        let body = write_request(7);
        let mut info = OpcuaInfo::default();
        let o = decode_service(&body, &mut info, 100).unwrap();
        assert_eq!(o.kind, Some(ServiceKind::Request));
        assert_eq!(info.service_id, Some(673));
        assert_eq!(info.service, Some("WriteRequest"));
        assert_eq!(info.request_handle, Some(7));
        let nodes = info.nodes.unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].node_id, "ns=2;s=Line1.Speed");
        assert_eq!(nodes[0].attribute_id, Some(13));
        assert_eq!(nodes[0].value, Some(OpcuaValue::Number(42.5)));
        assert_eq!(nodes[1].node_id, "i=2253");
        assert_eq!(nodes[1].value, Some(OpcuaValue::Numbers(vec![1.0, 2.0])));
        // Every strict prefix fails (complete parsers inside a message), keeping the
        // service id once the type NodeId is read.
        for k in 0..body.len() {
            let mut info = OpcuaInfo::default();
            let r = decode_service(&body[..k], &mut info, 100);
            assert!(r.is_err(), "prefix {k}");
            if k >= 4 {
                assert_eq!(info.service_id, Some(673));
            }
        }
        // The node bound.
        let mut info = OpcuaInfo::default();
        decode_service(&body, &mut info, 1).unwrap();
        assert_eq!(info.nodes.map(|n| n.len()), Some(1));
    }

    #[test]
    fn call_request_object_and_method() {
        let mut v = type_id(712);
        v.extend(request_header_bytes(3));
        v.extend_from_slice(&1i32.to_le_bytes()); // MethodsToCall: 1
        v.extend_from_slice(&[0x01, 0x02, 0x10, 0x27]); // ObjectId ns=2;i=10000
        v.extend_from_slice(&[0x03, 0x02, 0x00]); // MethodId ns=2;s=Line1.Plc.Stop
        v.extend(ua_str(b"Line1.Plc.Stop"));
        v.extend_from_slice(&1i32.to_le_bytes()); // InputArguments: 1
        v.extend_from_slice(&[0x03, 0x05]); // Byte 5
        let mut info = OpcuaInfo::default();
        decode_service(&v, &mut info, 100).unwrap();
        let nodes = info.nodes.unwrap();
        assert_eq!(nodes[0].node_id, "ns=2;i=10000");
        assert_eq!(nodes[0].method.as_deref(), Some("ns=2;s=Line1.Plc.Stop"));
    }

    #[test]
    fn activate_session_identity_tokens() {
        let token = |type_id: u16, body: Option<Vec<u8>>| {
            let mut v = super::tests::type_id(467);
            v.extend(request_header_bytes(9));
            v.extend_from_slice(&(-1i32).to_le_bytes()); // ClientSignature.Algorithm
            v.extend_from_slice(&(-1i32).to_le_bytes()); // ClientSignature.Signature
            v.extend_from_slice(&0i32.to_le_bytes()); // ClientSoftwareCertificates
            v.extend_from_slice(&1i32.to_le_bytes()); // LocaleIds: ["en"]
            v.extend(ua_str(b"en"));
            let [lo, hi] = type_id.to_le_bytes();
            v.extend_from_slice(&[0x01, 0x00, lo, hi]); // UserIdentityToken type id
            match body {
                Some(b) => {
                    v.push(0x01);
                    v.extend(ua_str(&b));
                }
                None => v.push(0x00),
            }
            v
        };
        let mut info = OpcuaInfo::default();
        decode_service(&token(321, Some(ua_str(b"anonymous"))), &mut info, 10).unwrap();
        assert_eq!(info.token_type, Some("anonymous"));
        assert_eq!(info.user, None);
        // UserNameIdentityToken: PolicyId "username", UserName "operator1", Password,
        // EncryptionAlgorithm null.
        let mut b = ua_str(b"username");
        b.extend(ua_str(b"operator1"));
        b.extend(ua_str(b"secret"));
        b.extend_from_slice(&(-1i32).to_le_bytes());
        let mut info = OpcuaInfo::default();
        decode_service(&token(324, Some(b)), &mut info, 10).unwrap();
        assert_eq!(info.token_type, Some("username"));
        assert_eq!(info.user.as_deref(), Some("operator1"));
        for (id, want) in [(327, "x509"), (940, "issued")] {
            let mut info = OpcuaInfo::default();
            decode_service(&token(id, None), &mut info, 10).unwrap();
            assert_eq!(info.token_type, Some(want));
        }
    }

    #[test]
    fn create_session_application() {
        let mut v = type_id(461);
        v.extend(request_header_bytes(1));
        v.extend(ua_str(b"urn:hmi-1:client")); // ApplicationUri
        v.extend(ua_str(b"urn:vendor:hmi")); // ProductUri
        v.push(0x02); // ApplicationName: text only
        v.extend(ua_str(b"HMI 1"));
        let mut info = OpcuaInfo::default();
        decode_service(&v, &mut info, 10).unwrap();
        let app = info.application.unwrap();
        assert_eq!(app.application_uri.as_deref(), Some("urn:hmi-1:client"));
        assert_eq!(app.product_uri.as_deref(), Some("urn:vendor:hmi"));
        assert_eq!(app.application_name.as_deref(), Some("HMI 1"));
    }

    #[test]
    fn add_and_delete_nodes() {
        let mut v = type_id(488);
        v.extend(request_header_bytes(1));
        v.extend_from_slice(&1i32.to_le_bytes());
        v.extend_from_slice(&[0x00, 85]); // ParentNodeId i=85
        v.extend_from_slice(&[0x00, 35]); // ReferenceTypeId i=35
        v.extend_from_slice(&[0x03, 0x01, 0x00]); // RequestedNewNodeId ns=1;s=New
        v.extend(ua_str(b"New"));
        v.extend_from_slice(&[0x01, 0x00]); // BrowseName ns 1
        v.extend(ua_str(b"New"));
        v.extend_from_slice(&2u32.to_le_bytes()); // NodeClass Variable
        v.extend_from_slice(&[0x00, 0x00, 0x00]); // NodeAttributes: empty
        v.extend_from_slice(&[0x00, 63]); // TypeDefinition i=63
        let mut info = OpcuaInfo::default();
        decode_service(&v, &mut info, 10).unwrap();
        assert_eq!(info.nodes.unwrap()[0].node_id, "ns=1;s=New");

        let mut v = type_id(500);
        v.extend(request_header_bytes(2));
        v.extend_from_slice(&1i32.to_le_bytes());
        v.extend_from_slice(&[0x01, 0x03, 0xE9, 0x03, 0x01]); // ns=3;i=1001, true
        let mut info = OpcuaInfo::default();
        decode_service(&v, &mut info, 10).unwrap();
        assert_eq!(info.nodes.unwrap()[0].node_id, "ns=3;i=1001");
    }

    #[test]
    fn responses_and_faults() {
        let mut v = type_id(676);
        v.extend(response_header_bytes(7, 0x8034_0000));
        let mut info = OpcuaInfo::default();
        let o = decode_service(&v, &mut info, 10).unwrap();
        assert_eq!(o.kind, Some(ServiceKind::Response));
        assert_eq!(
            (info.request_handle, info.status_code),
            (Some(7), Some(0x8034_0000))
        );
        let mut v = type_id(397);
        v.extend(response_header_bytes(8, 0x800E_0000));
        let mut info = OpcuaInfo::default();
        let o = decode_service(&v, &mut info, 10).unwrap();
        assert_eq!(o.kind, Some(ServiceKind::Fault));
        assert_eq!(info.service, Some("ServiceFault"));
        // An unknown service id: framed, no header read.
        let mut info = OpcuaInfo::default();
        let o = decode_service(&type_id(999), &mut info, 10).unwrap();
        assert_eq!(o.kind, None);
        assert_eq!(info.service, None);
        assert!(looks_plaintext(&type_id(631)));
        assert!(!looks_plaintext(&type_id(999)));
        assert!(!looks_plaintext(&[0x9A, 0x17, 0x3C]));
    }
}
