//! The `nginx-ha` command line.

#![deny(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nginx-ha",
    version,
    about = "High availability for nginx: VRRP with built-in nginx health checks"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a declaration; print a summary, or one line per problem.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
        /// Put this before every JSON path in the messages, so they name
        /// the option that was set (the NixOS module passes
        /// `services.nginxHa.`).
        #[arg(long, default_value = "")]
        path_prefix: String,
    },
    /// Print the declaration's JSON Schema: every key the daemon accepts,
    /// with its type, range, default, description and example.
    Schema,
    /// Render the declaration's `nginx` part as an http-level nginx config
    /// (to be included inside `http {}`).
    RenderNginx {
        #[arg(long, short)]
        config: PathBuf,
        /// Write here (atomically: temp file + rename) instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// The nginx version that will load the file (e.g. 1.26.3, or the
        /// output of `nginx -v`). Default: syntax every supported nginx
        /// (1.22 and later) accepts.
        #[arg(long)]
        nginx_version: Option<nginx_ha::render::NginxVersion>,
    },
    /// Run the daemon.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Sockets and state files [default: $RUNTIME_DIRECTORY, else /run/nginx-ha].
        #[arg(long)]
        runtime_dir: Option<PathBuf>,
        /// Persistent state (maintenance mode) [default: $STATE_DIRECTORY, else /var/lib/nginx-ha].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// When started as root, switch to this user (keeping only
        /// CAP_NET_RAW and CAP_NET_ADMIN).
        #[arg(long)]
        user: Option<String>,
        /// Allow running as root without --user (refused otherwise).
        #[arg(long)]
        allow_root: bool,
    },
    /// Show each instance's state, priority, checks and counters.
    Status {
        /// Print the daemon's JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// Where the daemon's control socket is [default: $RUNTIME_DIRECTORY, else /run/nginx-ha].
        #[arg(long)]
        runtime_dir: Option<PathBuf>,
    },
    /// Put this node in maintenance (hand the VIPs over and keep them
    /// away, across restarts) or take it out.
    Maintenance {
        #[arg(value_parser = ["on", "off"])]
        mode: String,
        #[arg(long)]
        runtime_dir: Option<PathBuf>,
    },
}

/// systemd passes RuntimeDirectory=/StateDirectory= as colon-separated
/// lists; the first entry is ours.
fn dir_from_env(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .and_then(|v| {
            v.to_str()
                .and_then(|s| s.split(':').next())
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(fallback))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::CheckConfig {
            config,
            path_prefix,
        } => check_config(&config, &path_prefix),
        Cmd::Schema => {
            let schema = nginx_ha::config::schema::declaration_schema();
            match serde_json::to_string_pretty(&schema) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("nginx-ha schema: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::RenderNginx {
            config,
            out,
            nginx_version,
        } => render_nginx(&config, out.as_deref(), nginx_version),
        Cmd::Status { json, runtime_dir } => {
            let dir =
                runtime_dir.unwrap_or_else(|| dir_from_env("RUNTIME_DIRECTORY", "/run/nginx-ha"));
            match nginx_ha::daemon::control::status(&dir) {
                Ok((st, raw)) => {
                    if json {
                        println!("{}", raw.trim_end());
                    } else {
                        print!("{}", nginx_ha::daemon::control::render(&st));
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("nginx-ha status: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Maintenance { mode, runtime_dir } => {
            let dir =
                runtime_dir.unwrap_or_else(|| dir_from_env("RUNTIME_DIRECTORY", "/run/nginx-ha"));
            let on = mode == "on";
            match nginx_ha::daemon::control::maintenance(&dir, on) {
                Ok(_) => {
                    println!("maintenance {mode}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("nginx-ha maintenance: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Run {
            config,
            runtime_dir,
            state_dir,
            user,
            allow_root,
        } => {
            nginx_ha::logging::init(log::LevelFilter::Info);
            let opts = nginx_ha::daemon::Options {
                config,
                runtime_dir: runtime_dir
                    .unwrap_or_else(|| dir_from_env("RUNTIME_DIRECTORY", "/run/nginx-ha")),
                state_dir: state_dir
                    .unwrap_or_else(|| dir_from_env("STATE_DIRECTORY", "/var/lib/nginx-ha")),
                user,
                allow_root,
            };
            match nginx_ha::daemon::run(opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    for line in e.to_string().lines() {
                        log::error!("{line}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check_config(path: &std::path::Path, path_prefix: &str) -> ExitCode {
    match nginx_ha::config::load(path) {
        Ok(d) => {
            println!("{}: OK: {}", path.display(), nginx_ha::config::summary(&d));
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.lines_with_prefix(path_prefix) {
                eprintln!("{}: {line}", path.display());
            }
            ExitCode::FAILURE
        }
    }
}

fn render_nginx(
    path: &std::path::Path,
    out: Option<&std::path::Path>,
    nginx_version: Option<nginx_ha::render::NginxVersion>,
) -> ExitCode {
    use nginx_ha::render::{RenderOptions, render_declaration, write_atomically};
    let decl = match nginx_ha::config::load(path) {
        Ok(d) => d,
        Err(e) => {
            for line in e.lines() {
                eprintln!("{}: {line}", path.display());
            }
            return ExitCode::FAILURE;
        }
    };
    let opts = RenderOptions {
        nginx_version,
        ..RenderOptions::default()
    };
    let text = match render_declaration(&decl, &opts) {
        Ok(t) => t,
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("{}: {line}", path.display());
            }
            return ExitCode::FAILURE;
        }
    };
    match out {
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout
                .write_all(text.as_bytes())
                .and_then(|_| stdout.flush())
            {
                eprintln!("cannot write to stdout: {e}");
                return ExitCode::FAILURE;
            }
        }
        Some(o) => {
            if let Err(e) = write_atomically(o, text.as_bytes()) {
                eprintln!("cannot write {}: {e}", o.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
