//! The node's umbrella error: every operation's own error, plus the few failures of
//! a request itself, each with the [`ErrorClass`] that says whose fault it is (the
//! API turns it into an HTTP status).

use crate::home::HomeError;
use crate::net::NetError;
use crate::ops::deliver::DeliverError;
use crate::ops::derive::DeriveError;
use crate::ops::discover::DiscoverError;
use crate::ops::fetch::FetchError;
use crate::ops::publish::PublishError;
use crate::ops::query::QueryError;
use crate::ops::submit::SubmitError;
use crate::state::governance::{GenesisError, LoadError};
use crate::state::tokens::TokenError;
use crate::state::StateError;
use crate::task::TaskError;

/// Any failure of a node operation, phrased for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Fetching failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Submitting a policy failed.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// Listing or judging the catalog failed.
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    /// The network layer failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// This node's state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The node home failed.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// Installing a genesis policy failed.
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    /// A background task failed.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The request is malformed (a product id, an address, an envelope); the message
    /// says how to fix it.
    #[error("{0}")]
    BadRequest(String),
    /// The thing asked for does not exist here.
    #[error("{0}")]
    NotFound(String),
    /// A query failed (boxed: it can carry a whole fetch error).
    #[error(transparent)]
    Query(Box<QueryError>),
    /// Making, listing or revoking a consumer token failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Registering or computing a derived product failed.
    #[error(transparent)]
    Derive(#[from] DeriveError),
    /// Delivering into object storage failed.
    #[error(transparent)]
    Deliver(#[from] DeliverError),
}

impl From<QueryError> for NodeError {
    fn from(e: QueryError) -> Self {
        NodeError::Query(Box::new(e))
    }
}

/// A product id or reference the request gave that does not parse.
impl From<mesh_protocol::id::IdError> for NodeError {
    fn from(e: mesh_protocol::id::IdError) -> Self {
        NodeError::BadRequest(e.to_string())
    }
}

impl From<LoadError> for NodeError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::NoGenesis => NodeError::BadRequest(e.to_string()),
            LoadError::State(s) => NodeError::State(s),
        }
    }
}

impl From<mesh_storage::StoreError> for NodeError {
    fn from(e: mesh_storage::StoreError) -> Self {
        NodeError::State(e.into())
    }
}

impl From<mesh_storage::ChunkError> for NodeError {
    fn from(e: mesh_storage::ChunkError) -> Self {
        NodeError::State(e.into())
    }
}

/// Whose fault an error is, and so how the API answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The request or setup is wrong (HTTP 400).
    Usage,
    /// The manifest draft is invalid (HTTP 422).
    InvalidManifest,
    /// The data breaks its contract (HTTP 422).
    InvalidData,
    /// Not found (HTTP 404).
    NotFound,
    /// The mesh policy refuses it (HTTP 403).
    Rejected,
    /// No peer could provide it (HTTP 502).
    Unavailable,
    /// This node failed: its disk, its database, a bug (HTTP 500).
    Internal,
}

impl ErrorClass {
    /// The HTTP status the control API and the web catalog answer with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorClass::Usage => 400,
            ErrorClass::InvalidManifest | ErrorClass::InvalidData => 422,
            ErrorClass::NotFound => 404,
            ErrorClass::Rejected => 403,
            ErrorClass::Unavailable => 502,
            ErrorClass::Internal => 500,
        }
    }

    /// The stable machine-readable name used in API error bodies.
    pub fn kind(self) -> &'static str {
        match self {
            ErrorClass::Usage => "usage",
            ErrorClass::InvalidManifest => "invalid_manifest",
            ErrorClass::InvalidData => "invalid_data",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Rejected => "rejected",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Internal => "internal",
        }
    }
}

impl NodeError {
    /// Whose fault this is.
    pub fn class(&self) -> ErrorClass {
        use ErrorClass::*;
        match self {
            NodeError::Publish(e) => match e {
                PublishError::InvalidManifest(_) => InvalidManifest,
                PublishError::Quality(_) => InvalidData,
                PublishError::Request(_) => Usage,
                PublishError::Refused(_) => Rejected,
                PublishError::Objects(mesh_storage::objects::ObjectError::Store { .. }) => {
                    Unavailable
                }
                PublishError::Objects(_) => Usage,
                _ => Internal,
            },
            NodeError::Fetch(e) => fetch_class(e),
            NodeError::Deliver(e) => deliver_class(e),
            NodeError::Submit(SubmitError::Refused(_)) => Rejected,
            NodeError::Discover(DiscoverError::NotInCatalog(_)) => NotFound,
            NodeError::Home(HomeError::Invalid(_)) => Usage,
            NodeError::Genesis(GenesisError::Store(_)) => Internal,
            NodeError::Genesis(_) => Usage,
            NodeError::BadRequest(_) => Usage,
            NodeError::NotFound(_) => NotFound,
            NodeError::Token(TokenError::Usage(_)) => Usage,
            NodeError::Token(TokenError::NotFound(_)) => NotFound,
            NodeError::Derive(DeriveError::Usage(_)) => Usage,
            NodeError::Derive(DeriveError::NotFound(_)) => NotFound,
            NodeError::Query(e) => match e.as_ref() {
                QueryError::Usage(_) => Usage,
                QueryError::Product { source, .. } => fetch_class(source),
                QueryError::Engine(mesh_contract::engine::QueryError::Start(_)) => Internal,
                QueryError::Engine(_) => Usage,
                QueryError::Home(_) | QueryError::Task(_) => Internal,
            },
            _ => Internal,
        }
    }
}

/// Whose fault a delivery's failure is: a wrong URL, key, bucket or prefix is
/// the user's; a store that fails or cannot be reached is unavailable.
fn deliver_class(e: &DeliverError) -> ErrorClass {
    use mesh_storage::objects::ObjectError as O;
    match e {
        DeliverError::Object(O::Store { .. }) => ErrorClass::Unavailable,
        DeliverError::Object(_)
        | DeliverError::NotOurs { .. }
        | DeliverError::BadPointer { .. } => ErrorClass::Usage,
        _ => ErrorClass::Internal,
    }
}

/// Whose fault a fetch's failure is.
fn fetch_class(e: &FetchError) -> ErrorClass {
    use ErrorClass::*;
    match e {
        FetchError::NotInCatalog(_) => NotFound,
        FetchError::InPlaceNeedsOut => Usage,
        FetchError::Denied(_) | FetchError::Rejected(_) => Rejected,
        FetchError::Unavailable(_) => Unavailable,
        FetchError::Output(
            mesh_storage::assemble::AssembleError::Exists(_)
            | mesh_storage::assemble::AssembleError::InTheWay(_),
        ) => Usage,
        _ => Internal,
    }
}
