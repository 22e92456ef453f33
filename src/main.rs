use std::process::ExitCode;

use clap::Parser;
use leaseq::auth::{TokenRequest, all_scopes};
use leaseq::cli::{Cli, Command};
use leaseq::config::Settings;
use leaseq::model::AccountId;
use leaseq::startup::Application;
use leaseq::telemetry;

/// The account `serve --dev` prints a token for.
const DEV_ACCOUNT: &str = "local";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("leaseq: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve { config } => {
            let settings = Settings::load(config.config.as_deref()).map_err(|e| e.to_string())?;
            telemetry::init(settings.log.format, &settings.log.level);
            for warning in settings.warnings() {
                tracing::warn!("{warning}");
            }
            let secrets = settings.secrets(config.dev).map_err(|e| e.to_string())?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let app = Application::build(&settings, &secrets).map_err(|e| e.to_string())?;
                if let Err(e) = app.broker().ping().await {
                    tracing::warn!(error = %e, redis = %settings.redis.url.endpoint(), "redis is not answering yet; the API answers 503 until it does");
                }
                let addr = host_of(&settings.server.bind);
                let scheme = if app.tls().is_some() { "https" } else { "http" };
                let base = format!("{scheme}://{addr}:{}", app.port());
                tokio::spawn(leaseq::tls::reload_on_sighup(app.tls().cloned()));
                tracing::info!(%base, "leaseq is listening");
                // On stdout too, so scripts that start the broker on port 0 can find it.
                println!("leaseq listening on {base}");
                if let Some(port) = app.metrics_port() {
                    let host = host_of(&settings.metrics.bind);
                    tracing::info!(metrics = %format!("http://{host}:{port}/metrics"), "metrics are served on their own address");
                }
                if config.dev {
                    let keys = settings.token_keys(&secrets).map_err(|e| e.to_string())?;
                    let request = TokenRequest {
                        subject: "dev".into(),
                        accounts: vec![DEV_ACCOUNT.to_owned()],
                        scope: all_scopes(),
                        queues: None,
                        ttl: dev_token_ttl(settings.auth.max_token_ttl_secs),
                    };
                    match keys.mint(&request) {
                        Ok(token) => print_dev_banner(&base, &token),
                        // A public key is configured: tokens come from its private half.
                        Err(e) => tracing::warn!(error = %e, "no dev token printed"),
                    }
                }
                app.run_until_stopped().await.map_err(|e| e.to_string())
            })
        }
        Command::Openapi => {
            let document = leaseq::api::openapi::document().map_err(|e| e.to_string())?;
            println!("{document}");
            Ok(())
        }
        Command::Token {
            config,
            accounts,
            scope,
            queues,
            ttl,
            subject,
            private_key,
        } => {
            let settings = Settings::load(config.config.as_deref()).map_err(|e| e.to_string())?;
            for account in &accounts {
                if account != "*" && AccountId::parse(account).is_none() {
                    return Err(format!(
                        "{account:?} is not an account id (1-64 of A-Z a-z 0-9 _ -)"
                    ));
                }
            }
            let secrets = settings.secrets(config.dev).map_err(|e| e.to_string())?;
            let mut keys = settings.token_keys(&secrets).map_err(|e| e.to_string())?;
            if let Some(path) = private_key {
                let pem = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                keys = keys.with_private_key(&pem).map_err(|e| e.to_string())?;
            }
            let request = TokenRequest {
                subject,
                accounts,
                scope,
                queues: (!queues.is_empty()).then_some(queues),
                ttl,
            };
            let token = keys.mint(&request).map_err(|e| e.to_string())?;
            println!("{token}");
            Ok(())
        }
    }
}

/// A week, or less when `auth.max_token_ttl_secs` caps tokens below that.
fn dev_token_ttl(max_token_ttl_secs: u64) -> std::time::Duration {
    let week = 7 * 24 * 3600;
    let secs = match max_token_ttl_secs {
        0 => week,
        cap => cap.min(week),
    };
    std::time::Duration::from_secs(secs)
}

fn print_dev_banner(base: &str, token: &str) {
    let api = format!("{base}/client/v4/accounts/{DEV_ACCOUNT}");
    println!(
        r#"
leaseq is ready (dev mode) at {base}
  account:   {DEV_ACCOUNT}
  token:     {token}
  dashboard: {base}/ui/#token={token}

Try it:
  export LEASEQ_TOKEN={token}
  curl -s -X POST {api}/queues -H "Authorization: Bearer $LEASEQ_TOKEN" -d '{{"queue_name":"demo"}}'
"#
    );
}

/// The host part of a bind address (`127.0.0.1:8080` → `127.0.0.1`), for printed URLs.
fn host_of(bind: &str) -> &str {
    bind.rsplit_once(':').map_or("127.0.0.1", |(host, _)| host)
}
