//! Chooses the dissector of a flow, by port and by content, and drives it.
//!
//! This is the only place that knows every protocol crate: the flow layer sees the
//! [`StreamHandler`] trait, the dissectors see their own bytes.

use otwatch_event::{Direction, FlowMeta, Pdu, Transport};
use otwatch_flow::{HandlerFactory, StreamHandler};
use otwatch_modbus::{ModbusConfig, ModbusFlow};

/// The Modbus/TCP well-known port.
const MODBUS_PORT: u16 = 502;

#[derive(Debug, Default)]
pub struct AppFactory {
    modbus: ModbusConfig,
}

/// One flow's dissector state.
#[derive(Debug)]
pub enum AppHandler {
    Modbus(Oriented<ModbusFlow>),
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

    fn outward(&self, pdus: &mut [Pdu]) {
        if self.swapped {
            for p in pdus {
                p.direction = p.direction.reverse();
            }
        }
    }
}

impl HandlerFactory for AppFactory {
    type Handler = AppHandler;

    fn classify(&mut self, flow: &FlowMeta, _dir: Direction, first: &[u8]) -> Option<AppHandler> {
        if flow.transport != Transport::Tcp {
            return None;
        }
        // The well-known port decides on its own (a stream joined in the middle of an
        // ADU must still be dissected once it resynchronises); elsewhere the content
        // must look like MBAP.
        let on_port = flow.src_port == MODBUS_PORT || flow.dst_port == MODBUS_PORT;
        if on_port || otwatch_modbus::probe(first) {
            let modbus = ModbusFlow::new(&self.modbus);
            return Some(AppHandler::Modbus(Oriented::new(modbus, flow, MODBUS_PORT)));
        }
        None
    }
}

impl StreamHandler for AppHandler {
    fn on_data(&mut self, dir: Direction, data: &[u8], out: &mut Vec<Pdu>) -> usize {
        let start = out.len();
        let AppHandler::Modbus(m) = self;
        let consumed = m.dissector.on_data(m.inward(dir), data, out);
        m.outward(out.get_mut(start..).unwrap_or_default());
        consumed
    }

    fn on_gap(&mut self, dir: Direction, out: &mut Vec<Pdu>) {
        let start = out.len();
        let AppHandler::Modbus(m) = self;
        m.dissector.on_gap(m.inward(dir), out);
        m.outward(out.get_mut(start..).unwrap_or_default());
    }

    fn on_end(&mut self, out: &mut Vec<Pdu>) {
        let start = out.len();
        let AppHandler::Modbus(m) = self;
        m.dissector.on_end(out);
        m.outward(out.get_mut(start..).unwrap_or_default());
    }
}
