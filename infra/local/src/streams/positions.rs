//! Each function's checkpoint on each shard, kept in a small JSON file so a restart resumes
//! where the last run stopped, as an event source mapping keeps its position: without it
//! every start re-read the stream from TRIM_HORIZON, and a record given up before a crash
//! was never seen again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Saved {
    /// Positions only mean something on the stream they were read from: a new moto or a
    /// recreated table has a new stream ARN (and moto reuses shard ids and sequence numbers).
    stream_arn: String,
    /// function → shard → last sequence number fully processed.
    positions: BTreeMap<String, BTreeMap<String, String>>,
}

pub struct Positions {
    path: PathBuf,
    saved: Mutex<Saved>,
}

impl Positions {
    /// The positions saved at `path` for `stream_arn`; none when the file is missing,
    /// unreadable, or for another stream.
    pub fn load(path: PathBuf, stream_arn: &str) -> Self {
        let saved = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) if saved.stream_arn == stream_arn => saved,
                // Every plain `make dev` starts a new moto: expected, so not a warning.
                Ok(saved) => {
                    tracing::info!(
                        file = %path.display(),
                        saved = saved.stream_arn,
                        stream = stream_arn,
                        "saved stream positions are for another stream (a new moto or a recreated table); starting over"
                    );
                    Saved::default()
                }
                Err(err) => {
                    tracing::warn!(file = %path.display(), error = %err, "saved stream positions are unreadable; starting over");
                    Saved::default()
                }
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(err) => {
                tracing::warn!(file = %path.display(), error = %err, "cannot read saved stream positions; starting over");
                Saved::default()
            }
        };
        Self {
            path,
            saved: Mutex::new(Saved {
                stream_arn: stream_arn.to_string(),
                ..saved
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The function's saved position on the shard.
    pub fn get(&self, function: &str, shard: &str) -> Option<String> {
        self.lock()
            .positions
            .get(function)
            .and_then(|shards| shards.get(shard))
            .cloned()
    }

    /// Whether the function has read this stream before (then a shard it has no position on
    /// is new and read from its start, whatever the mapping's StartingPosition).
    pub fn knows(&self, function: &str) -> bool {
        self.lock().positions.contains_key(function)
    }

    /// Records the checkpoint and writes the file (temp file, then rename, so a crash never
    /// leaves half a file).
    ///
    /// # Errors
    /// The file cannot be written; the position is still kept in memory.
    pub fn save(&self, function: &str, shard: &str, sequence: &str) -> std::io::Result<()> {
        let mut saved = self.lock();
        let shards = saved.positions.entry(function.to_string()).or_default();
        if shards.get(shard).is_some_and(|s| s == sequence) {
            return Ok(());
        }
        shards.insert(shard.to_string(), sequence.to_string());
        let json = serde_json::to_vec_pretty(&*saved).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut temp = self.path.clone().into_os_string();
        temp.push(format!(".{}.tmp", std::process::id()));
        std::fs::write(&temp, json)?;
        std::fs::rename(&temp, &self.path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Saved> {
        // A panic while holding the lock leaves whole values behind: keep going.
        self.saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::test_path as temp_path;

    const ARN: &str =
        "arn:aws:dynamodb:us-east-1:123456789012:table/events/stream/2024-01-01T00:00:00.000";

    #[test]
    fn saved_positions_load_back_for_the_same_stream() {
        let path = temp_path("positions.json");
        let positions = Positions::load(path.clone(), ARN);
        assert!(!positions.knows("FulfillmentFunction"));
        positions
            .save("FulfillmentFunction", "shard-1", "104")
            .unwrap();
        positions
            .save("RecoveryFunction", "shard-1", "101")
            .unwrap();
        let again = Positions::load(path.clone(), ARN);
        assert_eq!(
            again.get("FulfillmentFunction", "shard-1").as_deref(),
            Some("104")
        );
        assert_eq!(
            again.get("RecoveryFunction", "shard-1").as_deref(),
            Some("101")
        );
        assert_eq!(again.get("RecoveryFunction", "shard-2"), None);
        assert!(again.knows("RecoveryFunction"));
        // Written whole: no temp file left beside it.
        let dir = path.parent().unwrap();
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 1);
    }

    #[test]
    fn another_streams_positions_are_ignored_and_replaced() {
        let path = temp_path("positions.json");
        Positions::load(path.clone(), ARN)
            .save("F", "shard-1", "104")
            .unwrap();
        let other = Positions::load(path.clone(), "arn:…/stream/2025-01-01T00:00:00.000");
        assert_eq!(other.get("F", "shard-1"), None);
        assert!(!other.knows("F"));
        other.save("F", "shard-1", "7").unwrap();
        assert_eq!(Positions::load(path, ARN).get("F", "shard-1"), None);
    }

    #[test]
    fn an_unreadable_file_starts_over() {
        let path = temp_path("positions.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{not json").unwrap();
        let positions = Positions::load(path.clone(), ARN);
        assert_eq!(positions.get("F", "shard-1"), None);
        positions.save("F", "shard-1", "9").unwrap();
        assert_eq!(
            Positions::load(path, ARN).get("F", "shard-1").as_deref(),
            Some("9")
        );
    }
}
