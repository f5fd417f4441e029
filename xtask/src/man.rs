//! rustiscsid(8) and rustiscsi(8): the NAME, SYNOPSIS, DESCRIPTION and OPTIONS sections come
//! from the clap definitions (clap_mangen); every subcommand of the CLI gets its own entry
//! (usage, arguments, options); FILES, SIGNALS, EXIT STATUS and SEE ALSO are written here.

use std::path::{Path, PathBuf};

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

const MANUAL: &str = "System Manager's Manual";

/// Writes both generated pages into `dir`; returns their paths.
pub fn write_all(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(vec![
        crate::write_file(dir, "rustiscsid.8", &daemon_page()?)?,
        crate::write_file(dir, "rustiscsi.8", &cli_page()?)?,
    ])
}

fn man(cmd: clap::Command) -> Man {
    Man::new(cmd).section("8").manual(MANUAL)
}

/// NAME, SYNOPSIS, DESCRIPTION and OPTIONS of `cmd`.
fn head(page: &Man, out: &mut Vec<u8>) -> std::io::Result<()> {
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)
}

fn section(r: &mut Roff, title: &str) {
    r.control("SH", [title]);
}

fn para(r: &mut Roff, text: &str) {
    r.control("PP", []);
    r.text([roman(text)]);
}

/// A `.TP` entry: a bold tag, then its text.
fn entry(r: &mut Roff, tag: &str, text: &str) {
    r.control("TP", []);
    r.text([bold(tag)]);
    r.text([roman(text)]);
}

fn see_also(r: &mut Roff, pages: &[(&str, &str)]) {
    section(r, "SEE ALSO");
    let mut inlines = Vec::new();
    for (i, (name, sect)) in pages.iter().enumerate() {
        if i > 0 {
            inlines.push(roman(", "));
        }
        inlines.push(bold(*name));
        inlines.push(roman(format!("({sect})")));
    }
    r.text(inlines);
}

fn daemon_page() -> anyhow::Result<Vec<u8>> {
    let page = man(rustiscsi::daemon_args::command());
    let mut out = Vec::new();
    head(&page, &mut out)?;

    let mut r = Roff::new();
    section(&mut r, "OPERATION");
    para(
        &mut r,
        "rustiscsid serves the targets, LUNs and ACLs of its configuration file (see \
         rustiscsi.toml(5)) to iSCSI initiators on the portals it names. Without --config it \
         serves a demonstration target: a 1 GiB sparse file LUN under the state directory, on a \
         loopback-only portal (127.0.0.1:3260 as root, 127.0.0.1:13260 otherwise), and prints \
         how to connect to it.",
    );
    para(
        &mut r,
        "The configuration is validated before anything is served; --check validates it and \
         exits, reading neither secret files nor devices, so it also runs where those do not \
         exist (a package build). Under systemd the daemon reports readiness and watchdog \
         keep-alives with sd_notify (Type=notify). The rustiscsi(8) command talks to the \
         running daemon through its control socket.",
    );
    section(&mut r, "SIGNALS");
    entry(
        &mut r,
        "SIGHUP",
        "Re-read the configuration file and apply the difference: sessions of unaffected \
         LUNs stay logged in, initiators that lose access are logged out. An invalid file is \
         refused and the running configuration is kept (the error is logged).",
    );
    entry(
        &mut r,
        "SIGTERM, SIGINT",
        "Stop: ask initiators to log out, drain the commands in flight, exit.",
    );
    section(&mut r, "FILES");
    entry(
        &mut r,
        "/etc/rustiscsi/rustiscsi.toml",
        "The configuration file the packaged systemd units pass with --config.",
    );
    entry(
        &mut r,
        "/var/lib/rustiscsi",
        "State directory (daemon.state_dir): stable LUN identities (serial numbers, NAA \
         designators) and persistent reservations. Losing it changes every LUN's identity as \
         initiators see it.",
    );
    entry(
        &mut r,
        "/run/rustiscsi/control.sock",
        "Control socket (daemon.control_socket) used by rustiscsi(8).",
    );
    section(&mut r, "ENVIRONMENT");
    entry(
        &mut r,
        "RUSTISCSI_CONFIG",
        "Configuration file, as --config.",
    );
    entry(
        &mut r,
        "RUST_LOG",
        "Log filter; when set it takes precedence over --log.",
    );
    section(&mut r, "EXIT STATUS");
    entry(
        &mut r,
        "0",
        "Stopped on request, or --check found the configuration valid.",
    );
    entry(
        &mut r,
        "1",
        "--check found the configuration invalid, or the daemon failed while serving (a \
         portal could not be bound, a backstore could not be opened).",
    );
    entry(
        &mut r,
        "2",
        "The configuration could not be read or is invalid (without --check).",
    );
    see_also(
        &mut r,
        &[
            ("rustiscsi.toml", "5"),
            ("rustiscsi", "8"),
            ("iscsiadm", "8"),
            ("systemd.service", "5"),
        ],
    );
    r.to_writer(&mut out)?;
    page.render_version_section(&mut out)?;
    Ok(out)
}

fn cli_page() -> anyhow::Result<Vec<u8>> {
    let mut cmd = rustiscsi::cli::command();
    cmd.build();
    let after_help = cmd.get_after_help().map(|s| s.to_string());
    let page = man(cmd.clone());
    let mut out = Vec::new();
    head(&page, &mut out)?;

    let mut r = Roff::new();
    section(&mut r, "COMMANDS");
    para(
        &mut r,
        "Every change goes one way: rustiscsi fetches the running configuration, edits a \
         copy, validates it and sends it to rustiscsid, which answers with the plan of what \
         changed. --dry-run prints that plan and changes nothing. On a daemon whose \
         configuration is managed elsewhere (daemon.managed_by, e.g. NixOS), saveconfig \
         refuses and names the owner.",
    );
    r.to_writer(&mut out)?;
    for sub in cmd.get_subcommands() {
        commands(sub, &mut out)?;
    }

    let mut r = Roff::new();
    if let Some(text) = after_help {
        section(&mut r, "EXIT STATUS");
        for line in text
            .lines()
            .skip_while(|l| !l.trim_start().starts_with(char::is_numeric))
        {
            let line = line.trim();
            if let Some((code, meaning)) = line.split_once(char::is_whitespace) {
                entry(&mut r, code, meaning.trim());
            }
        }
    }
    section(&mut r, "ENVIRONMENT");
    entry(&mut r, "RUSTISCSI_SOCKET", "Control socket, as --socket.");
    see_also(
        &mut r,
        &[
            ("rustiscsid", "8"),
            ("rustiscsi.toml", "5"),
            ("targetcli", "8"),
        ],
    );
    r.to_writer(&mut out)?;
    page.render_version_section(&mut out)?;
    Ok(out)
}

/// One `.SS` entry per command that takes no further subcommand: full usage, the text,
/// its arguments and options.
fn commands(cmd: &clap::Command, out: &mut Vec<u8>) -> anyhow::Result<()> {
    if cmd.is_hide_set() || cmd.get_name() == "help" {
        return Ok(());
    }
    if cmd.has_subcommands() {
        for sub in cmd.get_subcommands() {
            commands(sub, out)?;
        }
        return Ok(());
    }
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
    let mut r = Roff::new();
    r.control("SS", [name.as_str()]);
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage:").trim();
    r.text([bold(usage)]);
    r.control("br", []);
    let about = cmd
        .get_long_about()
        .or(cmd.get_about())
        .map(|s| s.to_string())
        .unwrap_or_default();
    r.text([roman(about)]);
    r.to_writer(out)?;
    // The options of this command only (the global ones are listed under OPTIONS).
    let own: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_global_set() && !a.is_hide_set() && a.get_id() != "help")
        .cloned()
        .collect();
    if !own.is_empty() {
        let mut bare = clap::Command::new("command")
            .disable_help_flag(true)
            .disable_version_flag(true);
        for a in own {
            bare = bare.arg(a);
        }
        let mut buf = Vec::new();
        Man::new(bare).render_options_section(&mut buf)?;
        let text = String::from_utf8(buf)?;
        // clap_mangen opens the list with `.SH OPTIONS`; here it continues the entry.
        let body = text.replacen(".SH OPTIONS\n", "", 1);
        let mut r = Roff::new();
        r.control("RS", []);
        r.to_writer(out)?;
        out.extend_from_slice(body.as_bytes());
        let mut r = Roff::new();
        r.control("RE", []);
        r.to_writer(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The ENVIRONMENT section names the variables the clap definitions read.
    #[test]
    fn env_vars_of_the_clap_definitions_are_documented() {
        let daemon = String::from_utf8(super::daemon_page().unwrap()).unwrap();
        let cli = String::from_utf8(super::cli_page().unwrap()).unwrap();
        for (page, cmd) in [
            (&daemon, rustiscsi::daemon_args::command()),
            (&cli, rustiscsi::cli::command()),
        ] {
            for a in cmd.get_arguments() {
                if let Some(env) = a.get_env() {
                    let env = env.to_string_lossy();
                    let tag = format!(".TP\n\\fB{env}\\fR");
                    assert!(page.contains(&tag), "{env} is not in ENVIRONMENT");
                }
            }
        }
    }

    /// Every leaf subcommand of the CLI has its entry.
    #[test]
    fn every_cli_command_has_an_entry() {
        let page = String::from_utf8(super::cli_page().unwrap()).unwrap();
        let mut cmd = rustiscsi::cli::command();
        cmd.build();
        fn leaves(c: &clap::Command, out: &mut Vec<String>) {
            if c.has_subcommands() {
                for s in c.get_subcommands().filter(|s| s.get_name() != "help") {
                    leaves(s, out);
                }
            } else {
                out.push(c.get_bin_name().unwrap_or(c.get_name()).to_string());
            }
        }
        let mut names = Vec::new();
        for s in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            leaves(s, &mut names);
        }
        assert!(names.len() > 10, "{names:?}");
        for n in names {
            assert!(page.contains(&format!(".SS \"{n}\"")), "no entry for {n}");
        }
    }
}
