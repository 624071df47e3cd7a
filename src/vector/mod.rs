//! The vector store: named stores of named indexes, each an in-memory HNSW graph
//! ([`index::VectorIndex`]) over records kept in redb ([`persist`]).

pub mod bench;
pub mod filter;
pub mod index;
pub mod ingest;
pub mod store;

#[derive(Debug, Clone, thiserror::Error)]
pub enum VectorError {
    #[error("Vector with name {0} not found")]
    StoreNotFound(String),
    #[error("Index {0} not found")]
    IndexNotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Filter(#[from] filter::FilterError),
    #[error("{0}")]
    Storage(String),
}
