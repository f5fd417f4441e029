//! `cargo xtask install`: rustiscsi on a system without Nix (Debian and the like).
//!
//! Under `DESTDIR` + `PREFIX` (default `/usr/local`): `bin/rustiscsid`, `bin/rustiscsi`,
//! `share/man/man8/{rustiscsid,rustiscsi}.8`, `share/man/man5/rustiscsi.toml.5`, bash, zsh and
//! fish completions, `lib/systemd/system/rustiscsi.service`, `lib/sysusers.d/rustiscsi.conf`
//! (both directories are searched by systemd for the /usr/local prefix too), and
//! `SYSCONFDIR/rustiscsi/rustiscsi.toml` (the loopback-only demo configuration) when there is
//! none. Without a `DESTDIR`, as root, it then creates the user (`systemd-sysusers`) and
//! reloads systemd; it never enables or starts the service.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap_complete::Shell;

/// Options of `cargo xtask install`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Installation prefix.
    #[arg(long, default_value = "/usr/local")]
    pub prefix: PathBuf,
    /// Staging directory prepended to every path (packaging); nothing is run on the host.
    #[arg(long, env = "DESTDIR")]
    pub destdir: Option<PathBuf>,
    /// Directory of the configuration file.
    #[arg(long, default_value = "/etc")]
    pub sysconfdir: PathBuf,
    /// Use the binaries already in target/release instead of running `cargo build --release`.
    #[arg(long)]
    pub no_build: bool,
}

const BINARIES: [&str; 2] = ["rustiscsid", "rustiscsi"];

/// `root` + `path` (`path` absolute).
fn under(root: Option<&Path>, path: &Path) -> PathBuf {
    match root {
        Some(r) => r.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

fn copy(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", to.display()))?;
    println!("installed {}", to.display());
    Ok(())
}

fn write(to: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let dir = to.parent().expect("absolute path");
    let tmp = crate::write_file(dir, ".rustiscsi-install.tmp", text.as_bytes())?;
    copy(&tmp, to, mode)?;
    std::fs::remove_file(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))
}

fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Where a shell looks for the completion of `bin`, relative to the prefix.
fn completion_path(shell: Shell, bin: &str) -> PathBuf {
    match shell {
        Shell::Zsh => PathBuf::from(format!("share/zsh/site-functions/_{bin}")),
        Shell::Fish => PathBuf::from(format!("share/fish/vendor_completions.d/{bin}.fish")),
        _ => PathBuf::from(format!("share/bash-completion/completions/{bin}")),
    }
}

/// Runs the installation.
pub fn run(o: &Options) -> anyhow::Result<()> {
    let repo = crate::repo_root();
    if !o.prefix.is_absolute() || !o.sysconfdir.is_absolute() {
        bail!("--prefix and --sysconfdir must be absolute paths");
    }
    if !o.no_build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run_cmd(Command::new(cargo).current_dir(repo).args([
            "build",
            "--release",
            "--locked",
            "--package",
            "rustiscsi",
            "--bins",
        ]))?;
    }
    let dest = o.destdir.as_deref();
    let prefix = under(dest, &o.prefix);

    let release = repo.join("target/release");
    for bin in BINARIES {
        let built = release.join(bin);
        if !built.is_file() {
            bail!(
                "{} is missing: build with cargo build --release (or drop --no-build)",
                built.display()
            );
        }
        copy(&built, &prefix.join("bin").join(bin), 0o755)?;
    }

    let staging = repo.join("target/xtask-install");
    let _ = std::fs::remove_dir_all(&staging);
    for page in crate::man::write_all(&staging.join("man"))? {
        let name = page
            .file_name()
            .expect("file")
            .to_string_lossy()
            .to_string();
        copy(&page, &prefix.join("share/man/man8").join(name), 0o644)?;
    }
    copy(
        &repo.join("doc/rustiscsi.toml.5"),
        &prefix.join("share/man/man5/rustiscsi.toml.5"),
        0o644,
    )?;
    let comp = staging.join("completions");
    crate::completions::write_all(&comp)?;
    for (bin, _) in crate::completions::commands() {
        for shell in crate::completions::SHELLS {
            copy(
                &comp.join(crate::completions::file_name(shell, bin)),
                &prefix.join(completion_path(shell, bin)),
                0o644,
            )?;
        }
    }

    let unit = std::fs::read_to_string(repo.join("contrib/rustiscsi.service.in"))
        .context("cannot read contrib/rustiscsi.service.in")?
        .replace("@BINDIR@", &o.prefix.join("bin").display().to_string());
    write(
        &prefix.join("lib/systemd/system/rustiscsi.service"),
        &unit,
        0o644,
    )?;
    let sysusers = prefix.join("lib/sysusers.d/rustiscsi.conf");
    copy(&repo.join("contrib/rustiscsi.sysusers"), &sysusers, 0o644)?;

    let config = under(dest, &o.sysconfdir.join("rustiscsi/rustiscsi.toml"));
    if config.exists() {
        println!("kept {} (already there)", config.display());
    } else {
        copy(&repo.join("examples/minimal.toml"), &config, 0o644)?;
    }

    if dest.is_none() && nix_is_root() {
        run_cmd(Command::new("systemd-sysusers").arg(&sysusers))?;
        run_cmd(Command::new("systemctl").arg("daemon-reload"))?;
        println!(
            "\nrustiscsi is installed. Edit {} (see man rustiscsi.toml), then:\n  \
             systemctl enable --now rustiscsi",
            config.display()
        );
    } else {
        println!(
            "\nstaged (nothing run on this host). On the target system: systemd-sysusers, \
             systemctl daemon-reload, systemctl enable --now rustiscsi"
        );
    }
    Ok(())
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
