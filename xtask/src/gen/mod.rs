//! Generated test captures (`cargo xtask gen-pcaps`) and the benchmark capture.

use std::path::Path;

pub fn gen_pcaps(_out_dir: &Path) -> anyhow::Result<()> {
    anyhow::bail!("gen-pcaps is not written yet")
}

pub fn gen_bench_pcap(_path: &Path, _packets: u64) -> anyhow::Result<()> {
    anyhow::bail!("the benchmark capture generator is not written yet")
}
