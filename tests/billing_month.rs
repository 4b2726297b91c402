//! The simulated billing month (`scripts/billing-month.py`) against a real `aion dev`:
//! invoices, statements, grant ledgers, energy and CO2e must match the script's
//! independent recomputation from the raw leases and the usage it reported.

use std::process::Command;

#[test]
fn a_simulated_month_of_billing_adds_up() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/billing-month.py"
        ))
        .arg("--aion")
        .arg(env!("CARGO_BIN_EXE_aion"))
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("python3 runs the simulation");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the simulated month does not add up:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("Everything adds up"), "{stdout}");
    // Every finalised document was exported in the three formats.
    let names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for ext in ["json", "csv", "html"] {
        assert!(
            names.iter().filter(|n| n.ends_with(ext)).count() >= 6,
            "{ext} exports: {names:?}"
        );
    }
}
