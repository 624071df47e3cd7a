//! Embedded storage: one redb file in the data directory. This module owns opening the file, the
//! table layout, and moving blocking redb work off the async executor. Every write commits with
//! redb's default (immediate) durability, so a write that returned is on disk.
//!
//! Layout: each record kind is a [`Collection`] — a table `id → JSON bytes` plus secondary index
//! tables whose keys are `parent \0 time(8 bytes, big-endian) id`, so that "threads of a resource
//! ordered by time" or "runs of a workflow, newest first" are one range scan. Logs and spans are
//! append-only [`journal`]s with retention.

pub mod collection;
pub mod journal;
pub mod vectors;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};

pub use collection::{Collection, Index, Order, Page, Record, Window};

/// The name of the database file inside the data directory.
pub const DB_FILE: &str = "edgestra.redb";

/// redb's page cache. Its default (1 GiB) lets resident memory grow with the file under a
/// long write load; every hot table (threads, recent messages, runs) fits well inside this.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "the data file {0} is in use by another edgestra process; stop it or choose another --data-dir"
    )]
    Locked(PathBuf),
    #[error(
        "the data file {path} cannot be opened ({detail}); it may be damaged — move it away to start fresh"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot use the data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("storage error: {0}")]
    Database(String),
    #[error("stored record is unreadable: {0}")]
    Codec(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, StorageError>;

macro_rules! database_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::Database(e.to_string())
            }
        }
    )*};
}
database_errors!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError
);

impl From<serde_json::Error> for StorageError {
    fn from(e: serde_json::Error) -> Self {
        StorageError::Codec(e.to_string())
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) `data_dir/edgestra.redb` and makes sure every table exists.
    pub fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StorageError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StorageError::Locked(path.clone()),
                redb::DatabaseError::Storage(redb::StorageError::Io(source))
                    if source.kind() != std::io::ErrorKind::InvalidData =>
                {
                    StorageError::Io {
                        path: path.clone(),
                        source,
                    }
                }
                other => StorageError::Corrupt {
                    path: path.clone(),
                    detail: other.to_string(),
                },
            })?;
        let store = Store {
            db: Arc::new(db),
            path,
        };
        store.write_blocking(|tx| {
            for c in collection::ALL {
                c.create_tables(tx)?;
            }
            for j in journal::ALL {
                j.create_tables(tx)?;
            }
            tx.open_table(vectors::INDEXES)?;
            tx.open_table(vectors::RECORDS)?;
            Ok(())
        })?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a write transaction on the calling thread and commits it durably.
    pub fn write_blocking<R>(&self, f: impl FnOnce(&WriteTransaction) -> Result<R>) -> Result<R> {
        let tx = self.db.begin_write()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` in a read transaction on the calling thread.
    pub fn read_blocking<R>(&self, f: impl FnOnce(&ReadTransaction) -> Result<R>) -> Result<R> {
        let tx = self.db.begin_read()?;
        f(&tx)
    }

    /// Like [`Store::write_blocking`], on the blocking thread pool.
    pub async fn write<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&WriteTransaction) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_blocking(f))
            .await
            .map_err(|e| StorageError::Database(format!("storage task failed: {e}")))?
    }

    /// Whether the database answers: a read transaction begins (what readiness probes ask).
    pub async fn check(&self) -> Result<()> {
        self.read(|_| Ok(())).await
    }

    /// Like [`Store::read_blocking`], on the blocking thread pool.
    pub async fn read<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&ReadTransaction) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .map_err(|e| StorageError::Database(format!("storage task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StorageError::Locked(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("in use by another edgestra process")
        );
    }

    #[test]
    fn a_damaged_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), vec![0x5a; 8192]).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("may be damaged"), "{err}");
    }
}
