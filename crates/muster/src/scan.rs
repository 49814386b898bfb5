//! `muster scan PATH…`: certificates and SPKI pins inside shipped builds, printed as a
//! table or JSON, and with `--register` recorded as the pins of an artifact version.

use clap::Args;
use muster_probe::scan::{Found, Report, scan_paths};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ScanArgs {
    /// Files and directories (scanned recursively; zip, jar and apk archives are opened).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The artifact the paths are a build of, e.g. desktop-client (with --version).
    #[arg(long, requires = "version")]
    pub artifact: Option<String>,
    /// The artifact's version, e.g. 0.9.1.
    #[arg(long, requires = "artifact")]
    pub version: Option<String>,
    /// Record what was found as the artifact version's pins (needs --artifact, --version
    /// and --owner); each pinned certificate's expiry becomes a renewable.
    #[arg(long, requires_all = ["artifact", "version", "owner"])]
    pub register: bool,
    /// The team that answers for the artifact (owns its pinned certificates' renewables).
    #[arg(long)]
    pub owner: Option<String>,
}

/// Scans, printing progress on a terminal; warnings go to standard error.
pub fn scan(args: &ScanArgs) -> Report {
    let started = Instant::now();
    let interactive = std::io::stderr().is_terminal();
    let mut shown = Instant::now();
    let mut progress = |report: &Report| {
        if interactive && shown.elapsed() > Duration::from_millis(200) {
            shown = Instant::now();
            eprint!(
                "\rscanning: {} files, {:.1} MB, {} found",
                report.files,
                report.bytes as f64 / 1e6,
                report.hits.len()
            );
            let _ = std::io::stderr().flush();
        }
    };
    let report = scan_paths(&args.paths, &mut progress);
    if interactive {
        eprint!("\r\x1b[K");
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "scanned {} files ({:.1} MB) in {seconds:.2} s ({:.1} MB/s): {} certificates, {} pins, {} warnings",
        report.files,
        report.bytes as f64 / 1e6,
        report.bytes as f64 / 1e6 / seconds.max(1e-9),
        report
            .hits
            .iter()
            .filter(|h| matches!(h.found, Found::Certificate(_)))
            .count(),
        report
            .hits
            .iter()
            .filter(|h| matches!(h.found, Found::Pin { .. }))
            .count(),
        report.warnings.len()
    );
    report
}

/// Prints the findings as a table or as JSON on standard output.
pub fn print(report: &Report, json: bool) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report.hits)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 5]> = report
        .hits
        .iter()
        .map(|hit| match &hit.found {
            Found::Certificate(c) => [
                hit.path.clone(),
                hit.offset.to_string(),
                c.subject.clone(),
                c.not_after.strftime("%Y-%m-%d").to_string(),
                c.spki_sha256.clone(),
            ],
            Found::Pin { pin, spki_sha256 } => [
                hit.path.clone(),
                hit.offset.to_string(),
                format!("pin {pin}"),
                "-".into(),
                spki_sha256.clone(),
            ],
        })
        .collect();
    let header = ["PATH", "OFFSET", "SUBJECT", "NOT AFTER", "SPKI SHA-256"].map(String::from);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in [&header].into_iter().chain(&rows) {
        writeln!(
            out,
            "{:<w0$}  {:>w1$}  {:<w2$}  {:<w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
