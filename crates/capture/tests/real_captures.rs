//! Every public capture in `shared/pcaps` (beside the checkout) opens, and reads
//! exactly as tshark and pcap-parser read it.
//!
//! Packet counts come from MANIFEST.tsv's `packets` column, which agrees with
//! `tshark -r F -T fields -e frame.number | wc -l` on all 119 files (checked when this
//! test was written). First and last timestamps are tshark 4.0's `frame.time_epoch`
//! for each file, recorded in [`TSHARK_TIMES`]. Packet bytes and original lengths are
//! compared with pcap-parser's, packet by packet.

use std::path::{Path, PathBuf};

use otwatch_capture::{CaptureFile, Format, Packet};
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{Block, PcapCapture, PcapNGCapture};

// A skipped test says why in the test output; tracing has no subscriber here.
#[allow(clippy::print_stderr)]
fn shared_pcaps() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/pcaps"
    ));
    if dir.join("MANIFEST.tsv").is_file() {
        return Some(dir.to_path_buf());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "shared/pcaps is missing beside the checkout ({}); CI must have it",
        dir.display()
    );
    eprintln!(
        "skipped: shared/pcaps not found at {} (not in CI)",
        dir.display()
    );
    None
}

/// (file, packets) rows of MANIFEST.tsv.
fn manifest(dir: &Path) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .unwrap_or_else(|e| panic!("MANIFEST.tsv: {e}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} column"))
    };
    let (file, packets) = (col("file"), col("packets"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let n = f[packets].parse().unwrap_or_else(|e| panic!("{l}: {e}"));
            (f[file].to_string(), n)
        })
        .collect()
}

fn read_all(cap: &CaptureFile) -> Vec<Packet<'_>> {
    cap.packets()
        .map(|r| r.unwrap_or_else(|e| panic!("{}: {e}", cap.path().display())))
        .collect()
}

/// `secs.fraction` as printed by tshark, to nanoseconds.
fn epoch_nanos(s: &str) -> i64 {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<9}");
    secs.parse::<i64>().unwrap_or_else(|e| panic!("{s}: {e}")) * 1_000_000_000
        + frac[..9]
            .parse::<i64>()
            .unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn every_capture_opens_and_has_the_manifest_packet_count() {
    let Some(dir) = shared_pcaps() else { return };
    let rows = manifest(&dir);
    assert!(
        rows.len() >= 100,
        "MANIFEST.tsv lists {} captures",
        rows.len()
    );
    // Every capture file on disk is in the manifest (none escapes the test).
    for proto in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
        let proto = proto.unwrap_or_else(|e| panic!("{e}")).path();
        if !proto.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&proto).unwrap_or_else(|e| panic!("{e}")) {
            let p = f.unwrap_or_else(|e| panic!("{e}")).path();
            let name = p
                .strip_prefix(&dir)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            if p.is_file() && (name.ends_with(".pcap") || name.ends_with(".pcapng")) {
                assert!(
                    rows.iter().any(|(f, _)| *f == name),
                    "{name} is not in MANIFEST.tsv"
                );
            }
        }
    }
    let mut formats = [0usize; 2];
    for (file, want) in &rows {
        let cap = CaptureFile::open(&dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        formats[usize::from(cap.format() == Format::PcapNg)] += 1;
        let n = read_all(&cap).len();
        assert_eq!(n, *want, "{file}: packets");
    }
    // Both formats are exercised (several `.pcap` files are pcapng inside).
    assert!(formats[0] > 0 && formats[1] > 0, "{formats:?}");
}

#[test]
fn first_and_last_timestamps_match_tshark() {
    let Some(dir) = shared_pcaps() else { return };
    assert_eq!(
        TSHARK_TIMES.len(),
        manifest(&dir).len(),
        "a capture was added: extend TSHARK_TIMES"
    );
    for (file, first, last) in TSHARK_TIMES {
        let cap = CaptureFile::open(&dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let pkts = read_all(&cap);
        // tshark prints nanoseconds exactly (no float on the way), so the times must
        // agree to the nanosecond, not only to the microsecond.
        let got = (
            pkts.first().map(|p| p.ts.as_nanos()),
            pkts.last().map(|p| p.ts.as_nanos()),
        );
        let want = (Some(epoch_nanos(first)), Some(epoch_nanos(last)));
        assert_eq!(got, want, "{file}: first/last packet time (ns)");
    }
}

#[test]
fn packet_bytes_match_pcap_parser() {
    let Some(dir) = shared_pcaps() else { return };
    for (file, _) in manifest(&dir) {
        let cap = CaptureFile::open(&dir.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let ours: Vec<(&[u8], u32)> = read_all(&cap)
            .iter()
            .map(|p| (p.data, p.orig_len))
            .collect();
        let bytes: &[u8] = cap.bytes();
        let mut ng = None;
        let theirs: Vec<(&[u8], u32)> = match cap.format() {
            Format::Pcap => PcapCapture::from_file(bytes)
                .unwrap_or_else(|e| panic!("{file}: pcap-parser: {e:?}"))
                .blocks
                .iter()
                .map(|b| (b.data, b.origlen))
                .collect(),
            Format::PcapNg => ng
                .get_or_insert(
                    PcapNGCapture::from_file(bytes)
                        .unwrap_or_else(|e| panic!("{file}: pcap-parser: {e:?}")),
                )
                .sections
                .iter()
                .flat_map(|s| s.blocks.iter())
                .filter_map(|b| match b {
                    Block::EnhancedPacket(p) => Some((p.packet_data(), p.orig_len())),
                    Block::SimplePacket(p) => Some((p.packet_data(), p.orig_len())),
                    _ => None,
                })
                .collect(),
        };
        assert_eq!(ours.len(), theirs.len(), "{file}: packets");
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a, b, "{file}: packet {}", i + 1);
        }
    }
}

/// (file, first `frame.time_epoch`, last `frame.time_epoch`) from tshark 4.0.17:
/// `tshark -r F -T fields -e frame.time_epoch`, first and last lines.
#[rustfmt::skip]
const TSHARK_TIMES: &[(&str, &str, &str)] = &[
    ("dnp3/dbond_dnp3_test_data_part1.pcap", "1097501938.503079000", "1097513185.107737000"),
    ("dnp3/dbond_dnp3_test_data_part2.pcap", "1178205958.103372000", "1178206046.246177000"),
    ("dnp3/icsnpp_dnp3_example.pcap", "1583869914.739725000", "1583870037.357587000"),
    ("dnp3/iti_assign_class.pcap", "1427467998.344411000", "1427467998.584785000"),
    ("dnp3/iti_auth_control_challenge_response.pcap", "1427305209.133760000", "1427305209.512933000"),
    ("dnp3/iti_cold_restart_and_response.pcap", "1422552943.631529000", "1422552959.456340000"),
    ("dnp3/iti_dataset_exchange.pcap", "1439996248.537632000", "1439996248.773619000"),
    ("dnp3/iti_direct_operate_analog_output.pcap", "1429539822.935437000", "1429539822.935437000"),
    ("dnp3/iti_direct_operate_no_ack_crob.pcap", "1429646225.522003000", "1429646225.522003000"),
    ("dnp3/iti_directoperate_and_response.pcap", "1422551629.596202000", "1422551640.722327000"),
    ("dnp3/iti_disable_unsolcited_and_response.pcap", "1422474864.912391000", "1422474867.602612000"),
    ("dnp3/iti_enable_unsolicited_and_response.pcap", "1422475245.946844000", "1422475249.938445000"),
    ("dnp3/iti_file_delete.pcap", "1427467674.644866000", "1427467674.926968000"),
    ("dnp3/iti_file_read.pcap", "1427467464.901241000", "1427467465.371761000"),
    ("dnp3/iti_file_write.pcap", "1427467613.256541000", "1427467613.721694000"),
    ("dnp3/iti_full_exchange.pcap", "1422474208.236039000", "1422474213.637615000"),
    ("dnp3/iti_immediate_freeze.pcap", "1427467808.874919000", "1427467809.185300000"),
    ("dnp3/iti_lan_time_sync.pcap", "1427313462.665552000", "1427313463.063402000"),
    ("dnp3/iti_operate_aggressive_mode.pcap", "1427314930.873834000", "1427314931.183655000"),
    ("dnp3/iti_read_and_response.pcap", "1422475379.803903000", "1422475386.117429000"),
    ("dnp3/iti_select_operate_and_responses.pcap", "1422551418.717026000", "1422551431.789122000"),
    ("dnp3/iti_serial_time_sync.pcap", "1427313434.875423000", "1427313435.256244000"),
    ("dnp3/iti_unsolcited_response_and_confirm.pcap", "1422475674.570641000", "1422475679.866728000"),
    ("dnp3/iti_warm_restart_and_response.pcap", "1422557335.303891000", "1422557345.535213000"),
    ("dnp3/iti_write_binary_output.pcap", "1429803261.292777000", "1429803261.292777000"),
    ("dnp3/iti_write_iin_and_response.pcap", "1422476140.763328000", "1422476146.483614000"),
    ("dnp3/iti_write_vto_empty_string.pcap", "1429889666.545390000", "1429889666.545413000"),
    ("dnp3/odnp3conf_6_1_2.pcap", "1586534016.732000000", "1586534016.791000000"),
    ("dnp3/odnp3conf_6_6_2_3.pcap", "1586534049.769000000", "1586534049.770000000"),
    ("dnp3/odnp3conf_8_11_2_5.pcap", "1586534397.076000000", "1586534397.108000000"),
    ("dnp3/odnp3conf_8_15_2.pcap", "1586534508.874000000", "1586534508.879000000"),
    ("dnp3/odnp3conf_8_16_2_2_2.pcap", "1586534511.629000000", "1586534511.634000000"),
    ("dnp3/odnp3conf_8_16_2_2_3.pcap", "1586534512.195000000", "1586534512.200000000"),
    ("dnp3/odnp3conf_8_2_1_2_1.pcap", "1586534071.949000000", "1586534071.954000000"),
    ("dnp3/odnp3conf_8_2_3_2_1.pcap", "1586534099.546000000", "1586534099.547000000"),
    ("dnp3/odnp3conf_8_2_4_2.pcap", "1586534105.214000000", "1586534105.220000000"),
    ("dnp3/odnp3conf_8_2_5_2_1.pcap", "1586534105.756000000", "1586534105.763000000"),
    ("dnp3/odnp3conf_8_4_1_2_1.pcap", "1586534107.405000000", "1586534107.411000000"),
    ("dnp3/odnp3conf_8_4_2_2_1.pcap", "1586534125.797000000", "1586534125.798000000"),
    ("dnp3/odnp3conf_8_6_5_4.pcap", "1586534168.679000000", "1586534168.686000000"),
    ("dnp3/odnp3conf_8_7_1_2.pcap", "1586534171.961000000", "1586534171.965000000"),
    ("dnp3/odnp3conf_8_8_2.pcap", "1586534184.021000000", "1586534184.026000000"),
    ("dnp3/openics_DNP3-Read.pcap", "1227729908.705789000", "1227729908.706011000"),
    ("dnp3/openics_DNP3-ReadRequest.pcap", "1280281287.138672000", "1280281287.139404000"),
    ("dnp3/openics_DNP3-RequestLink.pcap", "1280281287.330982000", "1280281287.331557000"),
    ("dnp3/openics_DNP3-RequestLinkStatus.pcap", "1227729907.970109000", "1227729907.970332000"),
    ("dnp3/openics_DNP3-SelectOperate.pcap", "1227729908.575446000", "1227729908.575823000"),
    ("dnp3/openics_DNP3-SelectOperateRequest.pcap", "1280285287.275790000", "1280285287.276256000"),
    ("dnp3/openics_DNP3-Write.pcap", "1227729908.341379000", "1227729908.341621000"),
    ("dnp3/openics_DNP3-WriteRequest.pcap", "1280285287.477749000", "1280285287.478254000"),
    ("dnp3/sv_dnp3-eve.pcap", "1436895956.279540000", "1436895987.159063000"),
    ("dnp3/sv_dnp3-flood.pcap", "1767720203.738517000", "1767720203.743075000"),
    ("dnp3/sv_dnp3-max-points.pcap", "1765866466.645504000", "1765866466.681076000"),
    ("dnp3/sv_dnp3-too-long-reassembly-request.pcap", "1778104660.425048000", "1778104660.425073000"),
    ("dnp3/zeek_dnp3-flowbuffer-overflow-assert.pcap", "1786396862.256010000", "1786396862.256010000"),
    ("dnp3/zeek_dnp3.pcap", "1097501938.503079000", "1178206046.246177000"),
    ("dnp3/zeek_dnp3_del_measure.pcap", "1324503052.868798000", "1324503056.888145000"),
    ("dnp3/zeek_dnp3_en_spon.pcap", "1324916727.145940000", "1324916731.151500000"),
    ("dnp3/zeek_dnp3_file_del.pcap", "1325044375.989853000", "1325044380.002612000"),
    ("dnp3/zeek_dnp3_file_read.pcap", "1325036010.613655000", "1325036025.333161000"),
    ("dnp3/zeek_dnp3_file_write.pcap", "1325043634.700285000", "1325043639.332610000"),
    ("dnp3/zeek_dnp3_link_only.pcap", "1365783471.854086000", "1365783483.723463000"),
    ("dnp3/zeek_dnp3_read.pcap", "1324327254.640641000", "1324327258.651387000"),
    ("dnp3/zeek_dnp3_rec_time.pcap", "1324502978.461952000", "1324502982.466693000"),
    ("dnp3/zeek_dnp3_select_operate.pcap", "1324501737.744759000", "1324501745.760316000"),
    ("dnp3/zeek_dnp3_udp_en_spon.pcap", "1420058797.672714000", "1420058802.703908000"),
    ("dnp3/zeek_dnp3_udp_read.pcap", "1420058422.352798000", "1420058433.009791000"),
    ("dnp3/zeek_dnp3_udp_write.pcap", "1420058753.490016000", "1420058753.490949000"),
    ("dnp3/zeek_dnp3_write.pcap", "1324502910.885120000", "1324502914.900028000"),
    ("modbus/dbond_modbus_test_data_part1.pcap", "1093521678.945447000", "1093523220.676663000"),
    ("modbus/icsnpp_modbus_example.pcap", "1595660608.237857000", "1595890833.407055000"),
    ("modbus/iti_mb2.pcap", "1352726529.252792000", "1352726550.581378000"),
    ("modbus/iti_modbus_test.pcap", "1493388721.299588000", "1493388840.685083000"),
    ("modbus/iti_plant1_modbustcp.pcap", "1352718180.264365000", "1352718265.222877000"),
    ("modbus/ndpi_modbus.pcap", "1223541953.927963000", "1223541977.037227000"),
    ("modbus/sv_modbus.pcap", "1093521678.945447000", "1093523139.878395000"),
    ("modbus/zeek_4SICS-GeekLounge-151022-min.pcap", "1445502056.228889000", "1445502056.231649000"),
    ("modbus/zeek_modbus-eit.pcap", "1445425491.170028000", "1445425494.216667000"),
    ("modbus/zeek_modbusBig.pcap", "1381967744.641998000", "1381967802.468566000"),
    ("modbus/zeek_modbusSmall.pcap", "1400547199.329569000", "1400547255.173919000"),
    ("modbus/zeek_modbus_fuzz-72.pcap", "1153491909.414066000", "1153491933.406960000"),
    ("opcua/icsnpp_opcua_with-gap.pcap", "1700066893.201108000", "1700066893.235504000"),
    ("opcua/icsnpp_open62541_browse_has_server_idx.pcap", "1659565571.839571000", "1659565629.628952000"),
    ("opcua/icsnpp_open62541_browse_next.pcap", "1658508840.211349000", "1658509375.220662000"),
    ("opcua/icsnpp_open62541_browse_request_with_results.pcap", "1656455693.399531000", "1656455989.794428000"),
    ("opcua/icsnpp_open62541_client-server-getEndpoints.pcap", "1629417295.020808000", "1629417295.021976000"),
    ("opcua/icsnpp_open62541_client-server_mainloop-4-InnerDiagInfo.pcap", "1581628699.412807000", "1581628701.248381000"),
    ("opcua/icsnpp_open62541_client-server_mainloop-ActivateSession-diagInfo.pcap", "1658344709.286510000", "1658344711.138102000"),
    ("opcua/icsnpp_open62541_client-server_mainloop-hasInnerDiagInfo.pcap", "1581625168.909364000", "1581625170.757953000"),
    ("opcua/icsnpp_open62541_client-server_mainloop-hasInnerDiagInfohasAddlInfo.pcap", "1581630647.535536000", "1581630649.357314000"),
    ("opcua/icsnpp_open62541_client-server_mainloop-hasInnerStatusCode.pcap", "1581611906.840698000", "1581611908.767959000"),
    ("opcua/icsnpp_open62541_client-server_mainloop-not-localhost.pcap", "1586265466.658840000", "1586265468.519931000"),
    ("opcua/icsnpp_open62541_client-server_mainloop-withStringTable.pcap", "1582129573.765861000", "1582129575.588675000"),
    ("opcua/icsnpp_open62541_client-server_mainloop.pcap", "1579702050.363511000", "1579702062.289860000"),
    ("opcua/icsnpp_open62541_client-server_minimal.pcap", "1578963600.620216000", "1578963602.483388000"),
    ("opcua/icsnpp_open62541_create_monitored_items.pcap", "1673568916.890101000", "1673568950.978189000"),
    ("opcua/icsnpp_open62541_mainloop-no-handshake.pcap", "1579702060.738055000", "1579702062.289860000"),
    ("opcua/icsnpp_open62541_mainloop_testtrace.pcap", "1579702050.363511000", "1579702062.289860000"),
    ("opcua/icsnpp_open62541_read_service_test_data.pcap", "1665074407.368098000", "1665074416.691740000"),
    ("opcua/icsnpp_open62541_read_service_test_data_with_history.pcap", "1667935846.902658000", "1667935846.916720000"),
    ("opcua/icsnpp_python_opcua-client-server_encrypted.pcap", "1573842960.532647000", "1573842960.591141000"),
    ("opcua/icsnpp_python_opcua-client-server_minimal-2.pcap", "1579717131.476612000", "1579717131.489345000"),
    ("opcua/icsnpp_python_opcua-client-server_minimal.pcap", "1569447547.625970000", "1569447547.636972000"),
    ("opcua/iti_opc-ua-ap-method-wireshark-freeze.pcap", "1251847768.262779000", "1251847770.106942000"),
    ("s7comm/icsnpp_s7comm_plus.pcap", "1595359704.607623000", "1595359783.608118000"),
    ("s7comm/iti_s7comm_clean.pcap", "1496995086.695761000", "1496995961.505862000"),
    ("s7comm/ndpi_s7comm.pcap", "1408528803.880679000", "1408528804.016478000"),
    ("s7comm/wswiki_S7-1200-Uploading-OB1-TIAV12.pcap", "1387554083.725880000", "1387554089.032915000"),
    ("s7comm/wswiki_S7-1511_db2_var1_HMI.pcap", "1401979283.997027000", "1401979289.295342000"),
    ("s7comm/wswiki_S7-1511_db3_var1_HMI.pcap", "1412066394.194976000", "1412066395.077431000"),
    ("s7comm/wswiki_S7-1511_db6w0_HMI.pcap", "1411974511.002145000", "1411974511.093553000"),
    ("s7comm/wswiki_V13_1200_TP1200_timer_sync.pcapng", "1414243770.128254000", "1414243801.450822000"),
    ("s7comm/wswiki_V13_1200_TP1200_timer_sync_FehlerbeiMW100.pcapng", "1414254478.125222000", "1414254505.456327000"),
    ("s7comm/wswiki_s7-1200-hmi.pcap", "1412165336.989258000", "1412165344.104127000"),
    ("s7comm/wswiki_s7comm_downloading_block_db1.pcap", "1408528799.992327000", "1408528805.989465000"),
    ("s7comm/wswiki_s7comm_program_blocklist_onlineview.pcap", "1408528847.994116000", "1408528853.991030000"),
    ("s7comm/wswiki_s7comm_reading_plc_status.pcap", "1408529120.002516000", "1408529141.998926000"),
    ("s7comm/wswiki_s7comm_varservice_libnodavedemo.pcap", "1408528975.998192000", "1408528981.996241000"),
    ("s7comm/wswiki_s7comm_varservice_libnodavedemo_bench.pcap", "1408529021.080446000", "1408529041.824584000"),
];
