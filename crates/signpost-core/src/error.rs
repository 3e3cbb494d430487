/// Errors of the destination configuration API and find destination. `signpost-api` maps each
/// variant to one status code; every message is a clear sentence without secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("The entity's current ETag does not match If-Match")]
    PreconditionFailed { etag: String },
    /// The database cannot be reached now (503, with `Retry-After`): nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// The database has no room for the write (507): nothing was changed.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::Unprocessable(_) => 422,
            Error::PreconditionFailed { .. } => 412,
            Error::Unavailable(_) => 503,
            Error::InsufficientStorage(_) => 507,
            Error::Internal(_) => 500,
        }
    }
}

impl From<signpost_store::Error> for Error {
    fn from(e: signpost_store::Error) -> Self {
        use signpost_store::Error as S;
        match e {
            S::Conflict { kind, name, .. } => {
                Error::Conflict(format!("The {kind} '{name}' already exists"))
            }
            S::NotFound { kind, name, .. } => {
                Error::NotFound(format!("The {kind} '{name}' does not exist"))
            }
            S::Precondition {
                current: Some(etag),
                ..
            } => Error::PreconditionFailed { etag },
            S::Precondition {
                kind,
                name,
                current: None,
                ..
            } => Error::NotFound(format!("The {kind} '{name}' does not exist")),
            S::LimitExceeded { .. } => Error::Conflict(format!("{e}")),
            S::Invalid(m) => Error::BadRequest(m),
            other if other.outage().is_some() => outage(&other),
            other => {
                tracing::error!(error = %other, "store failure");
                Error::Internal("the store failed; see the server log".into())
            }
        }
    }
}

/// The answer to a store failure that is an outage of the database (logged as a warning: it is
/// the database's state, not a bug).
pub(crate) fn outage(e: &signpost_store::Error) -> Error {
    match e.outage() {
        Some(signpost_store::Outage::Full) => {
            tracing::warn!(error = %e, "the database has no room for a write");
            Error::InsufficientStorage(
                "The database has no room for this write; nothing was changed".into(),
            )
        }
        _ => {
            tracing::warn!(error = %e, "the database is not available");
            Error::Unavailable(
                "The database is not available; nothing was changed, try again shortly".into(),
            )
        }
    }
}
