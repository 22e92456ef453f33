//! The command line: `leaseq serve | token | openapi`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "leaseq",
    version,
    about = "A pull-based lease/ack message broker speaking the Cloudflare Queues API, on Redis"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// A TOML file overriding config/default.toml (environment LEASEQ__* overrides both).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Local development: generate missing secrets in server.data_dir.
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Print the OpenAPI 3.1 document of the HTTP API (what docs/openapi.json holds).
    Openapi,
    /// Print an API token signed with the configured key.
    Token {
        #[command(flatten)]
        config: ConfigArgs,
        /// Account the token may act on (repeatable; "*" for all).
        #[arg(long = "account", required = true, value_name = "ACCOUNT")]
        accounts: Vec<String>,
        /// Space-separated scopes.
        #[arg(
            long,
            default_value = "queues:read queues:write messages:push messages:pull"
        )]
        scope: String,
        /// Queue name the token is limited to (repeatable; default: all queues).
        #[arg(long = "queue", value_name = "NAME")]
        queues: Vec<String>,
        /// How long the token is valid, e.g. 1h, 24h, 30d.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The token's subject.
        #[arg(long, default_value = "operator")]
        subject: String,
        /// PEM private key matching auth.jwt_public_key_file (RS256, ES256, EdDSA).
        #[arg(long, value_name = "FILE")]
        private_key: Option<PathBuf>,
    },
}
