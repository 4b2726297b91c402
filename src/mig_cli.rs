//! `aion mig …`: offline MIG tables for operators — the profile table of a GPU
//! model and every maximal configuration, as text or JSON.
//!
//! Wiring (in `src/main.rs`, owned by the binary): declare `mod mig_cli;` and
//! add to the top-level subcommand enum
//! `Mig { #[command(subcommand)] cmd: mig_cli::MigCommand }`, dispatched with
//! `Command::Mig { cmd } => mig_cli::run(cmd)`. All formatting lives in
//! `aion_mig::report`, where it is unit-tested; this module only parses
//! arguments and prints.

use aion_mig::{GpuModel, report};
use anyhow::Context;
use clap::Subcommand;
use std::io::Write;

/// MIG subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum MigCommand {
    /// Print a GPU model's MIG profile table (like `nvidia-smi mig -lgip` / `-lgipp`).
    Profiles {
        /// GPU model: A100-40GB, A100-80GB, H100-80GB, H100-94GB or H200-141GB.
        #[arg(long)]
        model: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print every maximal valid MIG configuration of a GPU model, with a count.
    Configs {
        /// GPU model: A100-40GB, A100-80GB, H100-80GB, H100-94GB or H200-141GB.
        #[arg(long)]
        model: String,
        /// Only configurations made solely of these profiles (names or ids,
        /// comma-separated), maximal among them.
        #[arg(long, value_delimiter = ',')]
        profiles: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a MIG subcommand, printing to stdout.
pub fn run(cmd: MigCommand) -> anyhow::Result<()> {
    let out = match cmd {
        MigCommand::Profiles { model, json } => {
            let model: GpuModel = model.parse()?;
            if json {
                serde_json::to_string_pretty(&report::profiles_json(model))?
            } else {
                report::profiles_text(model)
            }
        }
        MigCommand::Configs {
            model,
            profiles,
            json,
        } => {
            let model: GpuModel = model.parse()?;
            let only = report::parse_profiles(model, &profiles).context("reading --profiles")?;
            if json {
                serde_json::to_string_pretty(&report::configs_json(model, &only))?
            } else {
                report::configs_text(model, &only)
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", out.trim_end()) {
        // `aion mig configs | head` closes the pipe early; that is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}
