//! Regenerate the committed scenario inputs: `cargo run -p vswitch-tests --bin gen-scenarios`.
//! Then `UPDATE_GOLDEN=1 cargo test -p vswitch-tests --test golden` and review the diff.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for s in vswitch_tests::scenarios::all() {
        if let Err(e) = s.write(&root) {
            eprintln!("{}: {e}", s.name);
            std::process::exit(1);
        }
        println!("wrote {}", root.join(s.name).display());
    }
}
