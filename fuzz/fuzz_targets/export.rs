//! `col import`: the zstd frame and the JSON lines of an export file. Never a panic; a file the plan accepts imports
//! without error.
#![no_main]

use std::io::{Cursor, Read};
use std::sync::Arc;

use colstore_app::backup::RestoreMode;
use colstore_app::{decode_export, import, plan_import};
use colstore_testkit::{InMemoryRepo, ManualClock};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(mut lines) = decode_export(Cursor::new(bytes)) {
        let mut sink = Vec::new();
        let _ = lines.by_ref().take(1 << 20).read_to_end(&mut sink);
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    rt.block_on(async {
        let repo = InMemoryRepo::new(Arc::new(ManualClock::at_2024()));
        if plan_import(&repo, Cursor::new(bytes), RestoreMode::Replace).await.is_ok() {
            import(&repo, &repo, Cursor::new(bytes), RestoreMode::Replace, &|_| {}).await.expect("a planned import succeeds");
        }
    });
});
