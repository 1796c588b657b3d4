//! Differential fuzzing of the fixed-offset fast path (issue 12): the
//! input describes frames (`l4vs_dataplane::difftest::frames`: base frames
//! of a lab director's traffic, cut and changed byte by byte), fed to two
//! workers alike but for `WorkerConfig::fast_path`; any difference in
//! verdict, bytes or counters, or a panic in either, is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = l4vs_dataplane::difftest::run(data) {
        panic!("{e}");
    }
});
