//! otwatch's build system. Placeholder main; the lead is writing it.
mod gen;
fn main() {
    let _ = gen::gen_pcaps;
    let _ = gen::gen_bench_pcap;
}
