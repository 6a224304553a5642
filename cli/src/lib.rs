//! `mesh`: the command-line interface of a mesh node, as a library so that
//! `mesh-testnet` can carry the same CLI in its own binary.
//!
//! Thin by design: flags are parsed here ([`args`]), long-running work happens in the
//! daemon (`mesh node run`) reached through its control API, and offline work (keys,
//! policy files, `init`) calls `mesh-node` directly. Every command that prints data
//! takes `--json`.

mod access;
mod args;
mod contract;
mod derive;
mod fetch;
mod governance;
mod input;
mod keys;
mod lineage;
mod network;
mod odps;
mod output;
mod products;
mod query;
mod setup;
mod subscribe;
mod tokens;

use crate::output::{say, say_err};
use std::process::ExitCode;

use clap::Parser;

use crate::args::{
    Cli, Command, ContractCommand, CouncilCommand, NodeCommand, OdpsCommand, PolicyCommand,
};

/// The control API client of the daemon running for `home`.
fn client(home: &std::path::Path) -> anyhow::Result<mesh_node::ApiClient> {
    Ok(mesh_node::ApiClient::for_home(&mesh_node::NodeHome::new(
        home,
    ))?)
}

/// Runs the `mesh` CLI with `args` (the first is the program name) and returns its
/// exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let json = cli.json;
    let result = match cli.command {
        Command::Init(a) => setup::init(&cli.home, a, json),
        Command::Id(a) => setup::id(&cli.home, a, json),
        Command::Node {
            command: NodeCommand::Run(a),
        } => setup::run_node(&cli.home, a),
        Command::Council {
            command: CouncilCommand::Keygen(a),
        } => keys::keygen(a, json),
        Command::Policy { command } => match command {
            PolicyCommand::Genesis(a) => keys::genesis(a, json),
            PolicyCommand::Draft(a) => governance::draft(&cli.home, a, json),
            PolicyCommand::Sign(a) => governance::sign(a, json),
            PolicyCommand::Submit(a) => governance::submit(&cli.home, a, json),
            PolicyCommand::Show(a) => governance::show(&cli.home, a, json),
            PolicyCommand::History => governance::history(&cli.home, json),
            PolicyCommand::Check(a) => governance::check(&cli.home, a, json),
        },
        Command::Contract { command } => match command {
            ContractCommand::Init(a) => contract::init(&cli.home, a, json),
            ContractCommand::Lint(a) => contract::lint(&cli.home, a, json),
            ContractCommand::Test(a) => contract::test(&cli.home, a, json),
            ContractCommand::Changelog(a) => contract::changelog(&cli.home, a, json),
            ContractCommand::Convert(a) => contract::convert(a, json),
        },
        Command::Odps { command } => match command {
            OdpsCommand::Import(a) => odps::import(&cli.home, a, json),
        },
        Command::Publish(a) => products::publish(&cli.home, a, json),
        Command::Products(a) => products::list(&cli.home, a, json),
        Command::Show(a) => products::show(&cli.home, a, json),
        Command::Lineage(a) => lineage::show(&cli.home, a, json),
        Command::Usage(a) => products::usage(&cli.home, a, json),
        Command::Fetch(a) => fetch::fetch(&cli.home, a, json),
        Command::Query(a) => query::query(&cli.home, a, json),
        Command::Derive(a) => derive::derive(&cli.home, a, json),
        Command::Derived => derive::list(&cli.home, json),
        Command::Gc(a) => products::gc(&cli.home, a, json),
        Command::Verify(a) => products::verify(&cli.home, a, json),
        Command::Peers(a) => network::peers(&cli.home, a, json),
        Command::Status => network::status(&cli.home, json),
        Command::Ui(a) => network::ui(&cli.home, a, json),
        Command::Access(a) => access::run(&cli.home, a, json),
        Command::Subscribe(a) => subscribe::subscribe(&cli.home, a, json),
        Command::Unsubscribe(a) => subscribe::unsubscribe(&cli.home, a, json),
        Command::Subscriptions => subscribe::list(&cli.home, json),
        Command::Subscribers(a) => subscribe::subscribers(&cli.home, a, json),
        Command::Token(a) => tokens::run(&cli.home, a, json),
        Command::Share(a) => tokens::share(&cli.home, a, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                say!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            } else {
                say_err!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
