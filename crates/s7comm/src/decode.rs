//! From a framed S7comm PDU (or S7comm-plus frame) to the event's native block, its
//! normalized operation and its anomalies.

use otwatch_event::{
    Anomalies, Operation, S7Block, S7Identity, S7Item, S7commInfo, S7commPlusInfo,
};

use crate::codes::{
    block_type_name, pi_service_operation, Area, Function, PlusFunction, PlusOpcode, Rosctr,
    UserdataGroup,
};
use crate::parser::{
    is_tls_record_type, parse_data_item, parse_item_spec, parse_plus_data, parse_plus_header,
    parse_userdata_param, plus_v3_payload, DataItem, S7Pdu, S7COMM_PLUS_PROTOCOL_ID,
    SYNTAX_ID_S7ANY,
};

/// A decoded PDU before the flow adds direction and pairing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decoded {
    pub info: S7commInfo,
    pub operation: Operation,
    pub anomalies: Anomalies,
}

/// What a job leaves behind for its ack / ack_data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobContext {
    pub pdu_ref: u16,
    pub function: Function,
    /// The request items (without written data).
    pub items: Vec<S7Item>,
    pub block: Option<S7Block>,
    pub pi_service: Option<String>,
    pub operation: Operation,
}

/// How a response relates to the outstanding jobs of the flow.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pairing<'a> {
    Matched(&'a JobContext),
    /// A job with this pdu_ref but another function: consumed, flagged.
    Mismatched,
    Unmatched,
}

/// Longest PI service name or block number kept (the wire allows 255).
const MAX_NAME: usize = 64;

fn base_info(pdu: &S7Pdu<'_>) -> S7commInfo {
    S7commInfo {
        rosctr: pdu.header.rosctr.0,
        pdu_ref: pdu.header.pdu_ref,
        error_class: pdu.header.error.map(|e| e.0),
        error_code: pdu.header.error.map(|e| e.1),
        function: "unknown",
        ..S7commInfo::default()
    }
}

/// Printable ASCII of `b`, trailing NULs and spaces removed.
pub(crate) fn ascii(b: &[u8]) -> String {
    let s: String = b
        .iter()
        .take(MAX_NAME)
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                char::from(c)
            } else {
                '\0'
            }
        })
        .collect();
    s.trim_end_matches(['\0', ' ']).replace('\0', ".")
}

/// A block named by 8 bytes of a file name or PI parameter: `[type: 2 ASCII]
/// [number: 5 ASCII digits][file system]`.
fn block_of(name: &[u8]) -> Option<S7Block> {
    let t = name.get(..2)?;
    let number = name.get(2..7)?;
    let block_type = match block_type_name([*t.first()?, *t.get(1)?]) {
        Some(n) => n.to_owned(),
        None => format!("{:02x}{:02x}", t.first()?, t.get(1)?),
    };
    Some(S7Block {
        block_type,
        number: ascii(number),
    })
}

/// The items of a read var / write var parameter (`[function][count][items]`);
/// `BAD_LENGTH` when the count promises more items than the parameter holds.
fn request_items(param: &[u8], anomalies: &mut Anomalies) -> Vec<S7Item> {
    let Some((&count, mut rest)) = param.get(1..).and_then(|p| p.split_first()) else {
        *anomalies |= Anomalies::MALFORMED;
        return Vec::new();
    };
    // Each item takes at least 3 bytes: the count cannot make this loop longer than
    // the parameter.
    let mut items = Vec::with_capacity(usize::from(count).min(rest.len() / 3));
    for _ in 0..count {
        match parse_item_spec(rest) {
            Ok((r, spec)) => {
                rest = r;
                let any = spec.syntax_id == SYNTAX_ID_S7ANY;
                items.push(S7Item {
                    area: spec.area.0,
                    area_name: if any { spec.area.name() } else { "unknown" },
                    db: spec.db,
                    address: spec.bit_address >> 3,
                    bit: (spec.bit_address & 7) as u8,
                    transport_size: spec.transport_size,
                    length: spec.length,
                    data: None,
                    return_code: None,
                });
            }
            Err(_) => {
                *anomalies |= Anomalies::BAD_LENGTH;
                break;
            }
        }
    }
    if !rest.is_empty() {
        *anomalies |= Anomalies::BAD_LENGTH;
    }
    items
}

/// The data items of a data part: at most `count` (the request's item count).
fn data_items<'a>(data: &'a [u8], count: usize, anomalies: &mut Anomalies) -> Vec<DataItem<'a>> {
    let mut out = Vec::with_capacity(count.min(data.len() / 4 + 1));
    let mut rest = data;
    for k in 0..count {
        if rest.is_empty() {
            *anomalies |= Anomalies::BAD_LENGTH;
            break;
        }
        match parse_data_item(rest, k + 1 == count) {
            Ok((r, item)) => {
                if item.truncated {
                    *anomalies |= Anomalies::BAD_LENGTH;
                }
                out.push(item);
                rest = r;
            }
            Err(_) => {
                // A failed read returns only [return code][transport size 0] ... or
                // less: what is left is malformed.
                *anomalies |= Anomalies::BAD_LENGTH;
                break;
            }
        }
    }
    out
}

/// Decodes a job (ROSCTR 1): its info and the context its answer needs.
pub(crate) fn decode_job(pdu: &S7Pdu<'_>) -> (Decoded, JobContext) {
    let mut info = base_info(pdu);
    let mut anomalies = pdu.anomalies;
    let function = Function(pdu.param.first().copied().unwrap_or(0));
    if pdu.param.is_empty() {
        anomalies |= Anomalies::MALFORMED;
    }
    info.function_code = Some(function.0);
    info.function = function.name();
    let mut operation = function.operation();
    if !function.is_known() {
        anomalies |= Anomalies::UNKNOWN_FUNCTION;
    }
    match function {
        Function::READ_VAR => {
            info.items = Some(request_items(pdu.param, &mut anomalies));
        }
        Function::WRITE_VAR => {
            let mut items = request_items(pdu.param, &mut anomalies);
            let values = data_items(pdu.data, items.len(), &mut anomalies);
            for (item, v) in items.iter_mut().zip(&values) {
                item.data = Some(v.data.to_vec());
            }
            info.items = Some(items);
        }
        Function::REQUEST_DOWNLOAD
        | Function::DOWNLOAD_BLOCK
        | Function::DOWNLOAD_ENDED
        | Function::START_UPLOAD => {
            // [function][status][u16][u32][file name length][file name]: the name is
            // `_` + block type + number + file system.
            match pdu
                .param
                .get(8)
                .map(|&n| pdu.param.get(9..9 + usize::from(n)))
            {
                Some(Some(name)) => {
                    info.block = name.get(1..).and_then(block_of);
                    if info.block.is_none() {
                        anomalies |= Anomalies::MALFORMED;
                    }
                }
                _ => anomalies |= Anomalies::MALFORMED,
            }
        }
        Function::UPLOAD | Function::END_UPLOAD if pdu.param.len() < 8 => {
            anomalies |= Anomalies::MALFORMED;
        }
        Function::PI_SERVICE => {
            // [function][7 unknown][parameter block length u16][parameter block]
            // [service name length][service name].
            let parsed = pdu
                .param
                .get(8..10)
                .and_then(|l| l.first_chunk::<2>())
                .map(|l| usize::from(u16::from_be_bytes(*l)))
                .and_then(|plen| {
                    let block = pdu.param.get(10..10 + plen)?;
                    let n = usize::from(*pdu.param.get(10 + plen)?);
                    let name = pdu.param.get(11 + plen..11 + plen + n)?;
                    Some((block, name))
                });
            match parsed {
                Some((block, name)) => {
                    let service = ascii(name);
                    operation = pi_service_operation(&service);
                    if matches!(service.as_str(), "_INSE" | "_DELE") {
                        // [block count][?] then 8-byte block names.
                        info.block = block.get(2..).and_then(block_of);
                    }
                    info.pi_service = Some(service);
                }
                None => anomalies |= Anomalies::MALFORMED,
            }
        }
        Function::PLC_STOP => {
            // [function][5 unknown][service name length][service name].
            let name = pdu
                .param
                .get(6)
                .and_then(|&n| pdu.param.get(7..7 + usize::from(n)));
            match name {
                Some(name) => info.pi_service = Some(ascii(name)),
                None => anomalies |= Anomalies::MALFORMED,
            }
        }
        _ => {}
    }
    let ctx = JobContext {
        pdu_ref: pdu.header.pdu_ref,
        function,
        items: info
            .items
            .iter()
            .flatten()
            .map(|i| S7Item {
                data: None,
                ..i.clone()
            })
            .collect(),
        block: info.block.clone(),
        pi_service: info.pi_service.clone(),
        operation,
    };
    (
        Decoded {
            info,
            operation,
            anomalies,
        },
        ctx,
    )
}

/// Decodes an ack (ROSCTR 2) or ack_data (ROSCTR 3) with what its job left.
pub(crate) fn decode_ack(pdu: &S7Pdu<'_>, pairing: Pairing<'_>) -> Decoded {
    let mut info = base_info(pdu);
    let mut anomalies = pdu.anomalies;
    let own = pdu.param.first().copied().map(Function);
    let function = match pairing {
        Pairing::Matched(job) => Some(job.function),
        _ => own,
    };
    match pairing {
        Pairing::Matched(job) => {
            if own.is_some_and(|f| f != job.function) {
                anomalies |= Anomalies::RESPONSE_MISMATCH;
            }
        }
        Pairing::Mismatched => anomalies |= Anomalies::RESPONSE_MISMATCH,
        Pairing::Unmatched => anomalies |= Anomalies::UNMATCHED_RESPONSE,
    }
    if pdu.header.rosctr == Rosctr::ACK_DATA && own.is_none() {
        anomalies |= Anomalies::MALFORMED;
    }
    if let Some(f) = function {
        info.function_code = Some(f.0);
        info.function = f.name();
        if !f.is_known() {
            anomalies |= Anomalies::UNKNOWN_FUNCTION;
        }
    } else {
        info.function = "ack";
    }
    let job = match pairing {
        Pairing::Matched(job) => Some(job),
        _ => None,
    };
    let mut operation = match (job, function) {
        (Some(j), _) => j.operation,
        (None, Some(f)) => f.operation(),
        (None, None) => Operation::Other,
    };
    if let Some(j) = job {
        info.block = j.block.clone();
        info.pi_service = j.pi_service.clone();
    }
    // The item count of the response parameter.
    let count = pdu.param.get(1).copied().map(usize::from);
    match function {
        Some(Function::READ_VAR) if pdu.header.rosctr == Rosctr::ACK_DATA => {
            let mut items = job.map(|j| j.items.clone()).unwrap_or_default();
            let n = count.unwrap_or(items.len());
            if job.is_some() && n != items.len() {
                anomalies |= Anomalies::RESPONSE_MISMATCH;
            }
            let values = data_items(pdu.data, n, &mut anomalies);
            merge_results(
                &mut items,
                values.iter().map(|v| (v.return_code, Some(v.data))),
            );
            info.items = Some(items);
        }
        Some(Function::WRITE_VAR) if pdu.header.rosctr == Rosctr::ACK_DATA => {
            let mut items = job.map(|j| j.items.clone()).unwrap_or_default();
            let n = count.unwrap_or(items.len());
            if job.is_some() && n != items.len() {
                anomalies |= Anomalies::RESPONSE_MISMATCH;
            }
            if pdu.data.len() < n {
                anomalies |= Anomalies::BAD_LENGTH;
            }
            merge_results(&mut items, pdu.data.iter().take(n).map(|&rc| (rc, None)));
            info.items = Some(items);
        }
        Some(Function::START_UPLOAD | Function::UPLOAD | Function::END_UPLOAD) if job.is_none() => {
            operation = Operation::ProgramUpload;
        }
        _ => {}
    }
    Decoded {
        info,
        operation,
        anomalies,
    }
}

/// Puts return codes (and read data) on the request items, in order; results beyond
/// the request's items (unmatched responses) get items of their own with no address.
fn merge_results<'a>(
    items: &mut Vec<S7Item>,
    results: impl Iterator<Item = (u8, Option<&'a [u8]>)>,
) {
    for (k, (rc, data)) in results.enumerate() {
        if let Some(item) = items.get_mut(k) {
            item.return_code = Some(rc);
            item.data = data.map(<[u8]>::to_vec);
        } else {
            items.push(S7Item {
                area_name: Area(0).name(),
                return_code: Some(rc),
                data: data.map(<[u8]>::to_vec),
                ..S7Item::default()
            });
        }
    }
}

/// Per-flow userdata state: SZL responses split over several PDUs carry the list
/// header only in the first.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UserdataState {
    /// The last SZL request asked for a follow-up fragment.
    pub szl_followup: bool,
}

/// The SHA-1 fingerprint of an S7 password as sent: `s7:` and 16 hex digits.
pub(crate) fn credential_of(password: &[u8]) -> String {
    let hex = sha1_smol::Sha1::from(password).digest().to_string();
    format!("s7:{}", hex.get(..16).unwrap_or(&hex))
}

/// Decodes a userdata PDU (ROSCTR 7).
pub(crate) fn decode_userdata(pdu: &S7Pdu<'_>, state: &mut UserdataState) -> Decoded {
    let mut info = base_info(pdu);
    let mut anomalies = pdu.anomalies;
    let Ok((_, p)) = parse_userdata_param(pdu.param) else {
        info.function = "unknown";
        anomalies |= Anomalies::MALFORMED;
        return Decoded {
            info,
            operation: Operation::Other,
            anomalies,
        };
    };
    info.function_group = Some(p.group.0);
    info.subfunction = Some(p.subfunction);
    info.function = p.group.subfunction_name(p.subfunction);
    if info.function == "unknown" {
        anomalies |= Anomalies::UNKNOWN_FUNCTION;
    }
    if let Some(e) = p.error_code {
        // The 16-bit parameter error code: class in the high byte, code in the low.
        if e != 0 {
            info.error_class = Some((e >> 8) as u8);
            info.error_code = Some((e & 0xff) as u8);
        }
    }
    let operation = p.group.operation(p.subfunction);
    // [return code][transport size][length u16][data]
    let item = parse_data_item(pdu.data, true).ok().map(|(_, d)| d);
    if item.is_some_and(|d| d.truncated) {
        anomalies |= Anomalies::BAD_LENGTH;
    }
    let request = p.kind == 4;
    match (p.group, p.subfunction) {
        (UserdataGroup::CPU_FUNCTIONS, 0x01) => {
            let body = item.map(|d| d.data).unwrap_or_default();
            if request {
                // A follow-up request carries no SZL id (return code 0x0a, no data).
                state.szl_followup = p.data_unit_ref.is_some_and(|d| d != 0) && body.len() < 4;
                if let [a, b, c, d, ..] = body {
                    info.szl_id = Some(u16::from_be_bytes([*a, *b]));
                    info.szl_index = Some(u16::from_be_bytes([*c, *d]));
                }
            } else {
                let continuation = std::mem::take(&mut state.szl_followup);
                if !continuation {
                    if let [a, b, c, d, records @ ..] = body {
                        let id = u16::from_be_bytes([*a, *b]);
                        info.szl_id = Some(id);
                        info.szl_index = Some(u16::from_be_bytes([*c, *d]));
                        info.identity = identity_of(id, records);
                    }
                }
            }
        }
        (UserdataGroup::SECURITY, 0x01) if request => {
            if let Some(d) = item.filter(|d| !d.data.is_empty()) {
                info.credential = Some(credential_of(d.data));
            }
        }
        _ => {}
    }
    Decoded {
        info,
        operation,
        anomalies,
    }
}

/// What an SZL response's records say about the CPU: list 0x11 (module
/// identification: order number, firmware) and 0x1c (component identification:
/// module name). `records` starts with the record length and count.
fn identity_of(szl_id: u16, records: &[u8]) -> Option<S7Identity> {
    let [lh, ll, _nh, _nl, rest @ ..] = records else {
        return None;
    };
    let mut rest: &[u8] = rest;
    let len = usize::from(u16::from_be_bytes([*lh, *ll]));
    if len < 2 {
        return None;
    }
    let mut id = S7Identity::default();
    let mut module_type = None;
    // One record per turn, each at least 2 bytes.
    while let Some(rec) = rest.get(..len) {
        rest = rest.get(len..).unwrap_or_default();
        let Some((idx, body)) = rec.split_first_chunk::<2>() else {
            break;
        };
        let index = u16::from_be_bytes(*idx);
        match (szl_id & 0xff, index) {
            (0x11, 0x0001) => {
                let s = ascii(body.get(..20).unwrap_or(body));
                if !s.is_empty() {
                    id.order_number = Some(s);
                }
            }
            (0x11, 0x0007) => {
                // [MlfB 20][BGTyp u16][Ausbg u16: 'V', major][Ausbe u16: minor, patch]
                if let Some([b'V', major, minor, patch]) = body.get(22..26) {
                    id.firmware = Some(format!("V{major}.{minor}.{patch}"));
                }
            }
            (0x1c, 0x0002) => {
                let s = ascii(body.get(..24).unwrap_or(body));
                if !s.is_empty() {
                    id.module_name = Some(s);
                }
            }
            (0x1c, 0x0007) => {
                let s = ascii(body.get(..32).unwrap_or(body));
                if !s.is_empty() {
                    module_type = Some(s);
                }
            }
            _ => {}
        }
    }
    if id.module_name.is_none() {
        id.module_name = module_type;
    }
    (id != S7Identity::default()).then_some(id)
}

/// Decodes one S7comm-plus TSDU (first byte 0x72), or a TLS record carried in COTP.
pub(crate) fn decode_plus(tsdu: &[u8]) -> (S7commPlusInfo, Operation, Anomalies) {
    let mut info = S7commPlusInfo {
        function: "unknown",
        ..S7commPlusInfo::default()
    };
    if tsdu
        .first()
        .is_some_and(|&b| b != S7COMM_PLUS_PROTOCOL_ID && is_tls_record_type(b))
    {
        info.protected = true;
        info.function = "tls";
        return (info, Operation::Other, Anomalies::empty());
    }
    let h = match parse_plus_header(tsdu) {
        Ok(h) => h,
        Err(_) => return (info, Operation::Other, Anomalies::MALFORMED),
    };
    let mut anomalies = h.anomalies;
    info.protocol_version = h.version;
    let data = match h.version {
        0x01 | 0x02 => h.data,
        0x03 => {
            // V3: an integrity part (a digest, not checked) starts the data; after it
            // the data is laid out as in V1/V2.
            info.protected = true;
            match plus_v3_payload(h.data) {
                Some(data) => data,
                None if h.data.is_empty() => h.data,
                None => {
                    anomalies |= Anomalies::MALFORMED;
                    return (info, Operation::Other, anomalies);
                }
            }
        }
        0xfe => {
            info.function = "system_event";
            info.opcode = h.data.first().copied().unwrap_or(0);
            return (info, Operation::Other, anomalies);
        }
        _ => {
            anomalies |= Anomalies::PROTOCOL_ID;
            return (info, Operation::Other, anomalies);
        }
    };
    if data.is_empty() {
        info.function = "keep_alive";
        return (info, Operation::Other, anomalies);
    }
    info.opcode = data.first().copied().unwrap_or(0);
    match PlusOpcode(info.opcode) {
        PlusOpcode::REQUEST | PlusOpcode::RESPONSE | PlusOpcode::RESPONSE2 => {}
        PlusOpcode::NOTIFICATION => {
            info.function = "notification";
            return (info, Operation::Read, anomalies);
        }
        _ => {
            anomalies |= Anomalies::UNKNOWN_FUNCTION;
            return (info, Operation::Other, anomalies);
        }
    }
    let Ok(d) = parse_plus_data(data) else {
        anomalies |= Anomalies::MALFORMED;
        return (info, Operation::Other, anomalies);
    };
    let f = PlusFunction(d.function);
    info.function_code = Some(d.function);
    info.function = f.name();
    info.session_id = d.session_id;
    if !f.is_known() {
        anomalies |= Anomalies::UNKNOWN_FUNCTION;
    }
    // Session creation goes to the server session container (object 0x120); a
    // DeleteObject request names the session it ends as its object.
    let session_object = match f {
        PlusFunction::CREATE_OBJECT => d.session_id.is_none_or(|s| s == 0x120),
        PlusFunction::DELETE_OBJECT => true,
        _ => false,
    };
    (info, f.operation(session_object), anomalies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_s7_pdu;

    #[test]
    fn credential_is_a_truncated_sha1() {
        // SHA-1("abc") = a9993e364706816aba3e25717850c26c9cd0d89d.
        assert_eq!(credential_of(b"abc"), "s7:a9993e364706816a");
    }

    #[test]
    fn ascii_trims_and_masks() {
        assert_eq!(ascii(b"6ES7 315-2EH14-0AB0 \0\0"), "6ES7 315-2EH14-0AB0");
        assert_eq!(ascii(&[b'A', 0x01, b'B']), "A.B");
    }

    #[test]
    fn szl_module_identification_gives_identity() {
        // SZL 0x0011 response records (S7-300 System Software manual, SSL-ID W#16#xy11):
        // record length 28, 2 records; index 1 = module (MlfB "6ES7 315-2EH14-0AB0 "),
        // index 7 = firmware, Ausbg 'V' 3, Ausbe 2.6.
        let mut r = vec![0x00, 0x1c, 0x00, 0x02];
        r.extend_from_slice(&[0x00, 0x01]);
        r.extend_from_slice(b"6ES7 315-2EH14-0AB0 ");
        r.extend_from_slice(&[0x00, 0xc0, 0x00, 0x04, 0x00, 0x01]);
        r.extend_from_slice(&[0x00, 0x07]);
        r.extend_from_slice(&[b' '; 20]);
        r.extend_from_slice(&[0x00, 0xc0, b'V', 0x03, 0x02, 0x06]);
        let id = identity_of(0x0011, &r).unwrap();
        assert_eq!(id.order_number.as_deref(), Some("6ES7 315-2EH14-0AB0"));
        assert_eq!(id.firmware.as_deref(), Some("V3.2.6"));
        assert_eq!(id.module_name, None);
        // Truncated records: nothing, no panic.
        for n in 0..r.len() {
            let _ = identity_of(0x0011, &r[..n]);
        }
        // SZL 0x001c: index 2 = module name (24 chars + 8 reserved).
        let mut c = vec![0x00, 0x22, 0x00, 0x01, 0x00, 0x02];
        let mut name = b"CPU 315-2 PN/DP".to_vec();
        name.resize(32, 0);
        c.extend_from_slice(&name);
        let id = identity_of(0x011c, &c).unwrap();
        assert_eq!(id.module_name.as_deref(), Some("CPU 315-2 PN/DP"));
    }

    #[test]
    fn pi_service_insert_names_the_block() {
        // Job, pdu ref 0x0f, param 26: PI service 0x28, 7 unknown bytes (.. 0xfd),
        // parameter block length 10: [count 1][0] "0A00001P"; name length 5 "_INSE"
        // (ndpi_s7comm.pcap frame 54).
        let mut b = vec![
            0x32, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x1a, 0x00, 0x00, // header
            0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x00, 0x0a, 0x01, 0x00,
        ];
        b.extend_from_slice(b"0A00001P");
        b.push(5);
        b.extend_from_slice(b"_INSE");
        let pdu = parse_s7_pdu(&b).unwrap();
        let (d, ctx) = decode_job(&pdu);
        assert!(d.anomalies.is_empty(), "{:?}", d.anomalies);
        assert_eq!(d.operation, Operation::ProgramDownload);
        assert_eq!(d.info.pi_service.as_deref(), Some("_INSE"));
        let blk = d.info.block.unwrap();
        assert_eq!(
            (blk.block_type.as_str(), blk.number.as_str()),
            ("DB", "00001")
        );
        assert_eq!(ctx.operation, Operation::ProgramDownload);
        // Every truncation of the parameter: flagged, never a panic.
        for n in 10..b.len() {
            let mut t = b[..n].to_vec();
            let plen = (n - 10) as u16;
            t[6..8].copy_from_slice(&plen.to_be_bytes());
            let pdu = parse_s7_pdu(&t).unwrap();
            let (d, _) = decode_job(&pdu);
            assert!(
                d.anomalies.contains(Anomalies::MALFORMED) || n == b.len(),
                "len {n}: {:?}",
                d.anomalies
            );
        }
    }

    /// Bytes from a hex string (test data copied from captures).
    fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        s.chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// S7comm-plus V3 TSDUs of icsnpp_s7comm_plus.pcap (after TPKT and COTP):
    /// `72 03 [length]`, the integrity part `20` + 32 digest bytes, the data, the
    /// trailer `72 03 00 00`.
    ///
    /// Frame 7, HMI -> PLC: opcode 0x31 request, reserved 0000, function 0x04f2
    /// SetVariable, reserved 0000, sequence 0x831a, session id 0x70000e4d, ...
    const V3_SET_VARIABLE: &str =
        "72030059 20 e969a95a852ab0e288480ccecb618e48779f4b68a1ce9a9c42cd6aa536800683
        31 0000 04f2 0000 831a 70000e4d 74 70000e5101881d000700ce000004e88969001200000000896a00
        1300896b000400000084eb2700000000 72030000";
    /// Frame 31, PLC -> HMI: opcode 0x32 response, function 0x054c GetMultiVariables,
    /// sequence 0x831d (no session id in a response).
    const V3_GET_MULTI_RESPONSE: &str =
        "72030043 20 3dcac8ee113108f0defe64eff4faf6106fe1fa3d75064cde9b8314d9f1e276a3
        32 0000 054c 0000 831d 3400010004010200088372030008be04000083a11000000000 72030000";
    /// Frame 2, PLC -> HMI: opcode 0x33 notification (subscription object 0x70000e51
    /// follows, no function code).
    const V3_NOTIFICATION: &str =
        "72030062 20 08c83ace381dfdbc42201789dec03b099172858efb6f3ef2e5e8ecb8bd254665
        33 70000e51 040000000000c98ec148019200000005000e41aa70aa9200000019000e417e538e92000000
        1a000e41467956920000001b000e4193eb850000000000 72030000";

    #[test]
    fn plus_v3_is_parsed_after_its_digest() {
        let b = hex(V3_SET_VARIABLE);
        assert_eq!(b.len(), 4 + 0x59 + 4);
        let (i, op, a) = decode_plus(&b);
        assert!(a.is_empty(), "{a:?}");
        assert_eq!((i.protocol_version, i.protected), (3, true));
        assert_eq!(
            (i.opcode, i.function_code, i.function),
            (0x31, Some(0x04f2), "set_variable")
        );
        assert_eq!(i.session_id, Some(0x7000_0e4d));
        assert_eq!(op, Operation::Write);

        let b = hex(V3_GET_MULTI_RESPONSE);
        assert_eq!(b.len(), 4 + 0x43 + 4);
        let (i, op, a) = decode_plus(&b);
        assert!(a.is_empty(), "{a:?}");
        assert_eq!(
            (i.opcode, i.function_code, i.function),
            (0x32, Some(0x054c), "get_multi_variables")
        );
        assert_eq!((i.session_id, i.protected), (None, true));
        assert_eq!(op, Operation::Read);

        let b = hex(V3_NOTIFICATION);
        assert_eq!(b.len(), 4 + 0x62 + 4);
        let (i, op, a) = decode_plus(&b);
        assert!(a.is_empty(), "{a:?}");
        assert_eq!(
            (i.opcode, i.function_code, i.function),
            (0x33, None, "notification")
        );
        assert!(i.protected);
        assert_eq!(op, Operation::Read);
    }

    #[test]
    fn plus_v3_without_a_whole_integrity_part_is_malformed() {
        let b = hex(V3_SET_VARIABLE);
        // Another digest length.
        let mut other = b.clone();
        other[4] = 0x1f;
        let (i, op, a) = decode_plus(&other);
        assert_eq!(a, Anomalies::MALFORMED);
        assert_eq!(
            (i.function_code, i.function, op),
            (None, "unknown", Operation::Other)
        );
        assert!(i.protected);
        // Every truncation (the header's length kept) but the one that ends with the
        // data (a first frame of a message in several): flagged, never a panic.
        for n in (4..b.len()).filter(|&n| n != 4 + 0x59) {
            let (i, _, a) = decode_plus(&b[..n]);
            assert!(!a.is_empty(), "len {n}");
            assert!(i.protected);
            if n < 4 + 33 + 13 {
                assert_eq!(i.function_code, None, "len {n}");
            }
        }
    }

    #[test]
    fn plus_tls_is_protected_and_not_parsed() {
        let (i, op, a) = decode_plus(&[0x17, 0x03, 0x03, 0x00, 0x10]);
        assert!(a.is_empty(), "{a:?}");
        assert!(i.protected);
        assert_eq!(
            (i.function, i.function_code, op),
            ("tls", None, Operation::Other)
        );
    }
}
