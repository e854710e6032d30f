//! Chooses the dissector of a flow, by port and by content, and drives it.
//!
//! This is the only place that knows every protocol crate: the flow layer sees the
//! [`StreamHandler`] trait, the dissectors see their own bytes.

use otwatch_dnp3::{Dnp3Config, Dnp3Flow, Framing};
use otwatch_event::{Direction, FlowMeta, Pdu, PduSink, Transport};
use otwatch_flow::{HandlerFactory, StreamHandler};
use otwatch_modbus::{ModbusConfig, ModbusFlow};
use otwatch_opcua::{OpcuaConfig, OpcuaFlow};
use otwatch_s7comm::{S7Config, S7Flow};

/// The Modbus/TCP well-known port.
const MODBUS_PORT: u16 = 502;
/// ISO-on-TCP (RFC 1006): S7comm and S7comm-plus.
const ISO_TSAP_PORT: u16 = 102;
/// OPC UA binary (opc.tcp).
const OPCUA_PORT: u16 = otwatch_opcua::OPCUA_PORT;

#[derive(Debug, Default)]
pub struct AppFactory {
    modbus: ModbusConfig,
    s7: S7Config,
    dnp3: Dnp3Config,
    opcua: OpcuaConfig,
}

/// One flow's dissector state.
#[derive(Debug)]
pub enum AppHandler {
    Modbus(Oriented<ModbusFlow>),
    S7(Oriented<S7Flow>),
    Opcua(Oriented<OpcuaFlow>),
    /// Not `Oriented`: DNP3 names its roles in every frame (the link DIR bit), so
    /// directions stay the flow's and `is_response` follows the DIR bit. Over UDP the
    /// DIR bit of the first datagram also makes the master the flow's `src`
    /// (`datagram_sender_is_client`), whichever end spoke first.
    Dnp3(Dnp3Flow),
}

/// A dissector that reads requests as `ToServer` bytes, and whether the flow's
/// initiator is in fact the protocol's server (a Modbus server on port 502 that opened
/// the connection, as some devices do): then requests travel `ToClient` and the
/// directions are swapped on the way in and out.
#[derive(Debug)]
pub struct Oriented<D> {
    dissector: D,
    swapped: bool,
}

impl<D> Oriented<D> {
    fn new(dissector: D, flow: &FlowMeta, server_port: u16) -> Self {
        let swapped = flow.src_port == server_port && flow.dst_port != server_port;
        Oriented { dissector, swapped }
    }

    fn inward(&self, dir: Direction) -> Direction {
        if self.swapped {
            dir.reverse()
        } else {
            dir
        }
    }
}

/// The handshake of a flow joined mid-stream was not seen: its dissector is told that
/// the first bytes may be the rest of a PDU the sensor's start cut.
fn joined<D>(flow: &FlowMeta, dissector: D, mid_stream: fn(D) -> D) -> D {
    if flow.handshake_seen {
        dissector
    } else {
        mid_stream(dissector)
    }
}

impl AppFactory {
    fn modbus_flow(&self, flow: &FlowMeta) -> ModbusFlow {
        joined(
            flow,
            ModbusFlow::new(&self.modbus),
            ModbusFlow::joined_mid_stream,
        )
    }

    fn s7_flow(&self, flow: &FlowMeta) -> S7Flow {
        joined(flow, S7Flow::new(&self.s7), S7Flow::joined_mid_stream)
    }

    fn opcua_flow(&self, flow: &FlowMeta) -> OpcuaFlow {
        joined(
            flow,
            OpcuaFlow::new(&self.opcua),
            OpcuaFlow::joined_mid_stream,
        )
    }

    fn dnp3_stream(&self, flow: &FlowMeta) -> Dnp3Flow {
        let dnp3 = Dnp3Flow::new(&self.dnp3, Framing::Stream);
        joined(flow, dnp3, Dnp3Flow::joined_mid_stream)
    }
}

impl HandlerFactory for AppFactory {
    type Handler = AppHandler;

    /// DNP3 over UDP: the link DIR bit says whether the first datagram's sender is the
    /// master (the flow's client).
    fn datagram_sender_is_client(&self, first: &[u8]) -> Option<bool> {
        otwatch_dnp3::from_master(first)
    }

    fn classify(&mut self, flow: &FlowMeta, dir: Direction, first: &[u8]) -> Option<AppHandler> {
        let dnp3_port = flow.src_port == otwatch_dnp3::PORT || flow.dst_port == otwatch_dnp3::PORT;
        if flow.transport == Transport::Udp {
            // DNP3 is the only UDP protocol dissected: by port, or a link header with a
            // valid CRC.
            return (dnp3_port || otwatch_dnp3::probe(first))
                .then(|| AppHandler::Dnp3(Dnp3Flow::new(&self.dnp3, Framing::Datagram)));
        }
        if flow.transport != Transport::Tcp {
            return None;
        }
        // The well-known port decides on its own (a stream joined in the middle of an
        // ADU must still be dissected once it resynchronises); elsewhere the content
        // must look like MBAP.
        let on_port = |port| flow.src_port == port || flow.dst_port == port;
        if on_port(MODBUS_PORT) {
            let modbus = self.modbus_flow(flow);
            return Some(AppHandler::Modbus(Oriented::new(modbus, flow, MODBUS_PORT)));
        }
        if on_port(ISO_TSAP_PORT) {
            let s7 = self.s7_flow(flow);
            return Some(AppHandler::S7(Oriented::new(s7, flow, ISO_TSAP_PORT)));
        }
        if on_port(OPCUA_PORT) {
            let ua = self.opcua_flow(flow);
            return Some(AppHandler::Opcua(Oriented::new(ua, flow, OPCUA_PORT)));
        }
        if dnp3_port {
            return Some(AppHandler::Dnp3(self.dnp3_stream(flow)));
        }
        if otwatch_modbus::probe(first) {
            let modbus = self.modbus_flow(flow);
            return Some(AppHandler::Modbus(Oriented::new(modbus, flow, MODBUS_PORT)));
        }
        if otwatch_opcua::probe(first) {
            // A Hello or an OpenSecureChannel: the side that sent it is the client.
            let ua = self.opcua_flow(flow);
            let swapped = dir == Direction::ToClient;
            return Some(AppHandler::Opcua(Oriented {
                dissector: ua,
                swapped,
            }));
        }
        if otwatch_s7comm::probe(first) {
            // On another port the flow's initiator is taken as the PG.
            let s7 = self.s7_flow(flow);
            return Some(AppHandler::S7(Oriented::new(s7, flow, ISO_TSAP_PORT)));
        }
        if otwatch_dnp3::probe(first) {
            return Some(AppHandler::Dnp3(self.dnp3_stream(flow)));
        }
        None
    }
}

/// Runs `f` on the dissector with the direction turned inward; the PDUs it pushes
/// leave with their direction turned outward.
fn drive<D, R>(
    o: &mut Oriented<D>,
    dir: Direction,
    out: &mut dyn PduSink,
    f: impl FnOnce(&mut D, Direction, &mut dyn PduSink) -> R,
) -> R {
    let inward = o.inward(dir);
    if !o.swapped {
        return f(&mut o.dissector, inward, out);
    }
    f(&mut o.dissector, inward, &mut Reversed(out))
}

/// Turns the direction of every PDU pushed through it.
struct Reversed<'a>(&'a mut dyn PduSink);

impl PduSink for Reversed<'_> {
    fn push(&mut self, mut pdu: Pdu) {
        pdu.direction = pdu.direction.reverse();
        self.0.push(pdu);
    }

    /// The answer does not depend on the direction (see [`PduSink::wants`]).
    fn wants(&self, pdu: &Pdu) -> bool {
        self.0.wants(pdu)
    }
}

impl StreamHandler for AppHandler {
    fn on_data(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize {
        match self {
            AppHandler::Modbus(m) => drive(m, dir, out, |d, dir, out| d.on_data(dir, data, out)),
            AppHandler::S7(s) => drive(s, dir, out, |d, dir, out| d.on_data(dir, data, out)),
            AppHandler::Opcua(u) => drive(u, dir, out, |d, dir, out| d.on_data(dir, data, out)),
            AppHandler::Dnp3(d) => d.on_data(dir, data, out),
        }
    }

    fn on_gap(&mut self, dir: Direction, out: &mut dyn PduSink) {
        match self {
            AppHandler::Modbus(m) => drive(m, dir, out, |d, dir, out| d.on_gap(dir, out)),
            AppHandler::S7(s) => drive(s, dir, out, |d, dir, out| d.on_gap(dir, out)),
            AppHandler::Opcua(u) => drive(u, dir, out, |d, dir, out| d.on_gap(dir, out)),
            AppHandler::Dnp3(d) => d.on_gap(dir, out),
        }
    }

    fn on_unseen_acked(&mut self, dir: Direction) {
        match self {
            AppHandler::Modbus(m) => m.dissector.on_unseen_acked(m.inward(dir)),
            AppHandler::S7(s) => s.dissector.on_unseen_acked(s.inward(dir)),
            AppHandler::Opcua(u) => u.dissector.on_unseen_acked(u.inward(dir)),
            AppHandler::Dnp3(d) => d.on_unseen_acked(dir),
        }
    }

    fn on_acked_beyond(&mut self, dir: Direction) {
        match self {
            AppHandler::Modbus(m) => m.dissector.on_acked_beyond(m.inward(dir)),
            AppHandler::S7(s) => s.dissector.on_acked_beyond(s.inward(dir)),
            AppHandler::Opcua(u) => u.dissector.on_acked_beyond(u.inward(dir)),
            // A DNP3 master keeps one request outstanding per outstation: its
            // answer is the one a gap in the responses takes.
            AppHandler::Dnp3(_) => {}
        }
    }

    fn on_end(&mut self, out: &mut dyn PduSink) {
        let dir = Direction::ToServer;
        match self {
            AppHandler::Modbus(m) => drive(m, dir, out, |d, _, out| d.on_end(out)),
            AppHandler::S7(s) => drive(s, dir, out, |d, _, out| d.on_end(out)),
            AppHandler::Opcua(u) => drive(u, dir, out, |d, _, out| d.on_end(out)),
            AppHandler::Dnp3(d) => d.on_end(out),
        }
    }
}
