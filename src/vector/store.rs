//! Named vector stores: their indexes, loaded from storage on first use, and every operation the
//! API offers. Writes go to redb first (committed), then to the in-memory index, under the
//! index's write lock so the two never disagree. All methods block: call them off the executor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use indexmap::IndexMap;
use serde_json::{Value, json};

use super::VectorError;
use super::filter::Filter;
use super::index::{Metric, VectorIndex};
use crate::storage::Store;
use crate::storage::vectors::{self, VectorRecord};

/// Largest `topK` a query may ask for.
pub const MAX_TOP_K: usize = 10_000;

/// A query result (§3.15).
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryResult {
    pub id: String,
    pub score: f32,
    pub metadata: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

/// `GET …/indexes/{name}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IndexStats {
    pub dimension: usize,
    pub count: usize,
    pub metric: Metric,
}

type Shared = Arc<RwLock<VectorIndex>>;

pub struct VectorStore {
    pub name: String,
    db: Store,
    loaded: Mutex<HashMap<String, Shared>>,
}

impl From<crate::storage::StorageError> for VectorError {
    fn from(e: crate::storage::StorageError) -> Self {
        match e {
            crate::storage::StorageError::Invalid(m) => VectorError::Invalid(m),
            other => VectorError::Storage(other.to_string()),
        }
    }
}

fn check_name(what: &str, name: &str) -> Result<(), VectorError> {
    if name.is_empty() || name.len() > 200 || name.contains('\0') {
        return Err(VectorError::Invalid(format!(
            "{what} must be 1 to 200 characters without NUL"
        )));
    }
    Ok(())
}

impl VectorStore {
    pub fn new(name: &str, db: Store) -> VectorStore {
        VectorStore {
            name: name.to_string(),
            db,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The in-memory index, built from storage the first time it is asked for.
    ///
    /// Locks here are taken whatever their poison: a panic while one was held (a bug) must not
    /// fail every later request on the store, and storage, not the in-memory index, is the
    /// truth the index is rebuilt from at the next start.
    fn index(&self, name: &str) -> Result<Shared, VectorError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ix) = loaded.get(name) {
            return Ok(ix.clone());
        }
        let (store, index) = (self.name.clone(), name.to_string());
        let (meta, records) = self.db.read_blocking(|tx| {
            let meta = vectors::get_index(tx, &store, &index)?;
            let records = if meta.is_some() {
                vectors::scan_records(tx, &store, &index)?
            } else {
                Vec::new()
            };
            Ok((meta, records))
        })?;
        let meta = meta.ok_or_else(|| VectorError::IndexNotFound(name.to_string()))?;
        let dimension = meta["dimension"].as_u64().unwrap_or(0) as usize;
        let metric = meta["metric"]
            .as_str()
            .and_then(Metric::parse)
            .unwrap_or(Metric::Cosine);
        let mut ix = VectorIndex::new(dimension, metric, records.len());
        let started = std::time::Instant::now();
        let n = records.len();
        let items = records
            .into_iter()
            .filter_map(|r| {
                let v: Vec<f64> = r.vector.iter().map(|x| *x as f64).collect();
                ix.prepare(&v).ok().map(|p| (r.id, p, r.metadata))
            })
            .collect();
        ix.upsert(items);
        tracing::info!(store = %self.name, index = name, vectors = n, ms = started.elapsed().as_millis() as u64, "vector index loaded");
        let shared = Arc::new(RwLock::new(ix));
        loaded.insert(name.to_string(), shared.clone());
        Ok(shared)
    }

    /// Creates an index; creating one that exists with the same shape succeeds.
    pub fn create_index(
        &self,
        name: &str,
        dimension: usize,
        metric: Metric,
    ) -> Result<(), VectorError> {
        check_name("indexName", name)?;
        if dimension == 0 || dimension > 65_536 {
            return Err(VectorError::Invalid(
                "dimension must be between 1 and 65536".into(),
            ));
        }
        let (store, index) = (self.name.clone(), name.to_string());
        let _guard = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        self.db.write_blocking(|tx| {
            if let Some(existing) = vectors::get_index_for_update(tx, &store, &index)? {
                let same = existing["dimension"].as_u64() == Some(dimension as u64)
                    && existing["metric"].as_str() == Some(metric.as_str());
                return if same {
                    Ok(())
                } else {
                    Err(crate::storage::StorageError::Invalid(format!(
                        "index {index} already exists with dimension {} and metric {}",
                        existing["dimension"], existing["metric"]
                    )))
                };
            }
            vectors::put_index(
                tx,
                &store,
                &index,
                &json!({"dimension": dimension, "metric": metric.as_str()}),
            )
        })?;
        Ok(())
    }

    pub fn list_indexes(&self) -> Result<Vec<String>, VectorError> {
        let store = self.name.clone();
        Ok(self
            .db
            .read_blocking(|tx| vectors::list_indexes(tx, &store))?)
    }

    pub fn describe(&self, name: &str) -> Result<IndexStats, VectorError> {
        let ix = self.index(name)?;
        let ix = ix.read().unwrap_or_else(|p| p.into_inner());
        Ok(IndexStats {
            dimension: ix.dimension,
            count: ix.len(),
            metric: ix.metric,
        })
    }

    pub fn delete_index(&self, name: &str) -> Result<(), VectorError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let (store, index) = (self.name.clone(), name.to_string());
        let existed = self
            .db
            .write_blocking(|tx| vectors::delete_index(tx, &store, &index))?;
        loaded.remove(name);
        if existed {
            Ok(())
        } else {
            Err(VectorError::IndexNotFound(name.to_string()))
        }
    }

    /// Inserts or replaces vectors; ids are generated where none are given. Returns the ids.
    pub fn upsert(
        &self,
        name: &str,
        vectors_in: Vec<Vec<f64>>,
        metadata: Vec<Value>,
        ids: Option<Vec<String>>,
    ) -> Result<Vec<String>, VectorError> {
        if metadata.len() > vectors_in.len() {
            return Err(VectorError::Invalid(format!(
                "{} metadata entries for {} vectors",
                metadata.len(),
                vectors_in.len()
            )));
        }
        let ids = match ids {
            Some(ids) if ids.len() != vectors_in.len() => {
                return Err(VectorError::Invalid(format!(
                    "{} ids for {} vectors",
                    ids.len(),
                    vectors_in.len()
                )));
            }
            Some(ids) => ids,
            None => (0..vectors_in.len())
                .map(|_| uuid::Uuid::new_v4().to_string())
                .collect(),
        };
        for id in &ids {
            check_name("an id", id)?;
        }
        let ix = self.index(name)?;
        let mut ix = ix.write().unwrap_or_else(|p| p.into_inner());
        let mut records = Vec::with_capacity(ids.len());
        let mut prepared = Vec::with_capacity(ids.len());
        for (i, (id, v)) in ids.iter().zip(&vectors_in).enumerate() {
            let p = ix
                .prepare(v)
                .map_err(|e| VectorError::Invalid(format!("vectors[{i}]: {e}")))?;
            let meta = metadata.get(i).cloned().unwrap_or_else(|| json!({}));
            if !meta.is_object() {
                return Err(VectorError::Invalid(format!(
                    "metadata[{i}] must be an object"
                )));
            }
            records.push(VectorRecord {
                id: id.clone(),
                vector: v.iter().map(|x| *x as f32).collect(),
                metadata: meta.clone(),
            });
            prepared.push((id.clone(), p, meta));
        }
        let (store, index) = (self.name.clone(), name.to_string());
        self.db
            .write_blocking(|tx| vectors::put_records(tx, &store, &index, &records))?;
        ix.upsert(prepared);
        Ok(ids)
    }

    /// Deletes vectors by id; returns how many existed.
    pub fn delete_vectors(&self, name: &str, ids: &[String]) -> Result<usize, VectorError> {
        let ix = self.index(name)?;
        let mut ix = ix.write().unwrap_or_else(|p| p.into_inner());
        let (store, index) = (self.name.clone(), name.to_string());
        self.db
            .write_blocking(|tx| vectors::delete_records(tx, &store, &index, ids))?;
        Ok(ix.delete(ids))
    }

    /// The `top_k` nearest vectors to `query` among those matching `filter`.
    pub fn query(
        &self,
        name: &str,
        query: &[f64],
        top_k: usize,
        filter: Option<&Value>,
        include_vector: bool,
    ) -> Result<Vec<QueryResult>, VectorError> {
        if top_k == 0 || top_k > MAX_TOP_K {
            return Err(VectorError::Invalid(format!(
                "topK must be between 1 and {MAX_TOP_K}"
            )));
        }
        let filter = filter.map(Filter::parse).transpose()?;
        let ix = self.index(name)?;
        let hits = {
            let ix = ix.read().unwrap_or_else(|p| p.into_inner());
            let q = ix
                .prepare(query)
                .map_err(|e| VectorError::Invalid(format!("queryVector: {e}")))?;
            ix.search(&q, top_k, filter.as_ref())
        };
        let mut originals: HashMap<String, Vec<f32>> = HashMap::new();
        if include_vector && !hits.is_empty() {
            let ids: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
            let (store, index) = (self.name.clone(), name.to_string());
            for r in self
                .db
                .read_blocking(|tx| vectors::get_records(tx, &store, &index, &ids))?
            {
                originals.insert(r.id, r.vector);
            }
        }
        Ok(hits
            .into_iter()
            .map(|h| QueryResult {
                vector: originals.remove(&h.id),
                id: h.id,
                score: h.score,
                metadata: h.metadata,
            })
            .collect())
    }
}

/// All vector stores of a project, by name (`default` always exists).
#[derive(Clone, Default)]
pub struct VectorStores {
    stores: IndexMap<String, Arc<VectorStore>>,
}

impl VectorStores {
    pub fn new(names: impl IntoIterator<Item = String>, db: &Store) -> VectorStores {
        let mut stores = IndexMap::new();
        for name in std::iter::once("default".to_string()).chain(names) {
            stores
                .entry(name.clone())
                .or_insert_with(|| Arc::new(VectorStore::new(&name, db.clone())));
        }
        VectorStores { stores }
    }

    pub fn get(&self, name: &str) -> Result<Arc<VectorStore>, VectorError> {
        self.stores
            .get(name)
            .cloned()
            .ok_or_else(|| VectorError::StoreNotFound(name.to_string()))
    }
}
