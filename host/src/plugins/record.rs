//! What the store remembers about each plugin: its generations and their
//! roles, written durably on every transition so that a restart comes back
//! in exactly the state the server left.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::settings::PluginSettings;
use crate::log::Position;
use crate::projector::ErrorReport;

/// The SHA-256 of a plugin file, in hex: the identity of its content.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(String);

impl ContentHash {
    pub fn of(bytes: &[u8]) -> ContentHash {
        ContentHash(hex::encode(Sha256::digest(bytes)))
    }

    /// A hash read back from a name; `None` unless 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<ContentHash> {
        (text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| ContentHash(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 16 digits, for keyspace names and log lines.
    pub fn short(&self) -> &str {
        &self.0[..16]
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One generation: a content hash and the keyspace its view is built in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenRecord {
    pub hash: ContentHash,
    /// Unique per generation: two builds of the same content (a rebuild)
    /// get two keyspaces.
    pub keyspace: String,
    pub created_at_ms: u64,
    /// The settings it was started with, as status shows them.
    pub settings: PluginSettings,
    /// Set when the process died inside one of its batches: it does not
    /// run until an operator resumes, skips, rebuilds or removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Quarantine>,
}

/// Why a generation is stopped, and at which batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantine {
    pub reason: String,
    /// The first and last position of the batch that was in flight.
    pub from: Position,
    pub to: Position,
    pub at_ms: u64,
}

impl GenRecord {
    pub fn new(hash: ContentHash, settings: PluginSettings) -> GenRecord {
        let now = crate::clock::now_ms();
        GenRecord {
            keyspace: format!("{}-{now}", hash.short()),
            hash,
            created_at_ms: now,
            settings,
            quarantine: None,
        }
    }
}

/// Why a candidate is being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// New content for the plugin.
    Upgrade,
    /// The same content replayed into a fresh keyspace.
    Rebuild,
    /// The previous generation catching up to serve again; it takes over as
    /// soon as it has caught up, whatever the cutover setting.
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateRecord {
    #[serde(flatten)]
    pub generation: GenRecord,
    pub purpose: Purpose,
}

/// Content that was tried and refused (did not load, or failed its replay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedRecord {
    pub hash: ContentHash,
    pub error: ErrorReport,
}

/// The generation replaced at the last cutover, kept for a rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousRecord {
    #[serde(flatten)]
    pub generation: GenRecord,
    pub retired_at_ms: u64,
}

/// Everything the store knows about one plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginRecord {
    /// The content the operator last asked for (the file, an upload, a
    /// rollback): a file whose hash differs was changed while the server
    /// was not looking and is acted on at start.
    pub desired: Option<ContentHash>,
    pub serving: Option<GenRecord>,
    pub candidate: Option<CandidateRecord>,
    pub failed: Option<FailedRecord>,
    pub previous: Option<PreviousRecord>,
}

impl PluginRecord {
    /// Every generation that owns a keyspace.
    pub fn keyspaces(&self) -> impl Iterator<Item = &GenRecord> {
        self.serving
            .iter()
            .chain(self.candidate.iter().map(|c| &c.generation))
            .chain(self.previous.iter().map(|p| &p.generation))
    }

    /// Every content hash whose bytes must be kept.
    pub fn hashes(&self) -> impl Iterator<Item = &ContentHash> {
        self.keyspaces()
            .map(|g| &g.hash)
            .chain(self.failed.iter().map(|f| &f.hash))
            .chain(self.desired.iter())
    }

    /// The generation (serving or candidate) with this keyspace.
    pub fn running_mut(&mut self, keyspace: &str) -> Option<&mut GenRecord> {
        self.serving
            .iter_mut()
            .chain(self.candidate.iter_mut().map(|c| &mut c.generation))
            .find(|g| g.keyspace == keyspace)
    }

    /// True when nothing is left to remember.
    pub fn is_empty(&self) -> bool {
        self.serving.is_none()
            && self.candidate.is_none()
            && self.failed.is_none()
            && self.previous.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_only_in_their_own_form() {
        let h = ContentHash::of(b"x");
        assert_eq!(ContentHash::parse(h.as_str()), Some(h.clone()));
        assert_eq!(h.short().len(), 16);
        assert!(ContentHash::parse("abc").is_none());
        assert!(ContentHash::parse(&h.as_str().to_uppercase()).is_none());
    }

    #[test]
    fn a_record_round_trips_through_json() {
        let g = GenRecord::new(ContentHash::of(b"x"), PluginSettings::default());
        let record = PluginRecord {
            desired: Some(g.hash.clone()),
            serving: Some(g.clone()),
            candidate: Some(CandidateRecord {
                generation: g.clone(),
                purpose: Purpose::Rebuild,
            }),
            failed: None,
            previous: Some(PreviousRecord {
                generation: g,
                retired_at_ms: 5,
            }),
        };
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<PluginRecord>(&text).unwrap(), record);
    }
}
