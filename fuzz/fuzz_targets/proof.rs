#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| git_audit_fuzz::run("proof", data));
