//! The plugin lifecycle as a state table: which role each generation has,
//! which roles it may move to, and what every transition does to the
//! plugin's durable record. Pure: no I/O, no threads. The plugin's actor
//! (`actor.rs`) persists the record a transition returns, then carries out
//! its effects.
//!
//! # Roles of a generation
//!
//! ```text
//!                  install (no serving)
//!     (new) ───────────────────────────────────────────┐
//!       │ install / rebuild (a serving exists)         ▼
//!       ▼                    cutover          ┌──────────────┐
//!  ┌───────────┐ ───────────────────────────► │   Serving    │
//!  │ Candidate │                              └──────────────┘
//!  └───────────┘ ◄──────────┐                        │ replaced at a cutover
//!    │       │    rollback  │                        ▼
//!    │ fails │          ┌───────────┐  retention / next cutover
//!    ▼       │          │ Previous  │ ─────────────────────────► Retired
//!  Failed    │          └───────────┘
//!            └ discarded (another file, DELETE candidate) ──────► Retired
//! ```
//!
//! | role      | may become                  |
//! |-----------|-----------------------------|
//! | Candidate | Serving, Failed, Retired    |
//! | Serving   | Previous, Retired           |
//! | Previous  | Candidate, Retired          |
//! | Failed    | (kept as a record only)     |
//! | Retired   | (none: keyspace dropped)    |
//!
//! # Transitions of a plugin
//!
//! | transition        | from                                | to / effects                                             |
//! |-------------------|-------------------------------------|----------------------------------------------------------|
//! | `Started`         | no serving                          | new generation serves at once and replays                |
//! | `CandidateStarted`| a serving generation                | new candidate replays beside it; an older one is retired |
//! | `Rejected`        | any                                 | `failed` = content and error; nothing else changes       |
//! | `CandidateFailed` | that candidate                      | candidate retired, `failed` = it                         |
//! | `CaughtUp`        | that candidate, cutover auto or a rollback | cutover (below); manual: waits for `Promote`      |
//! | `Promote`         | a candidate                         | cutover: candidate serves, serving → previous, old previous retired |
//! | `Rollback`        | a previous generation               | previous → candidate (resumes from its checkpoint)        |
//! | `Discard`         | a candidate                         | candidate retired                                        |
//! | `KeepServing`     | serving content asked for again     | a candidate of other content is retired; failed cleared  |
//! | `PreviousExpired` | previous past its retention         | previous retired                                         |
//! | `Restarted`       | the record as stored                | serving serves and resumes, candidate resumes, previous stays parked, failed stays failed |
//! | `Removed`         | any                                 | every generation retired, record gone                    |
//! | `Quarantined`     | a serving or candidate generation   | it does not run (the process died inside its batch)       |
//! | `Released`        | a quarantined generation            | it runs again (resumed, or past the skipped batch)        |
//!
//! A transition asked of a state that does not allow it is refused with
//! [`Refused`], and nothing changes: a bug shows up as an error, not as a
//! silently wrong state.

use super::record::{
    CandidateRecord, ContentHash, FailedRecord, GenRecord, PluginRecord, PreviousRecord, Purpose,
    Quarantine,
};
use crate::projector::ErrorReport;

/// The role of one generation of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Candidate,
    Serving,
    Previous,
    Failed,
    Retired,
}

impl Role {
    /// The roles a generation in this role may move to.
    pub fn may_become(self) -> &'static [Role] {
        match self {
            Role::Candidate => &[Role::Serving, Role::Failed, Role::Retired],
            Role::Serving => &[Role::Previous, Role::Retired],
            Role::Previous => &[Role::Candidate, Role::Retired],
            Role::Failed | Role::Retired => &[],
        }
    }

    fn check(self, next: Role) -> Result<(), Refused> {
        if self.may_become().contains(&next) {
            Ok(())
        } else {
            Err(Refused::Illegal(format!(
                "a {self:?} generation cannot become {next:?}"
            )))
        }
    }
}

/// Whether a caught-up candidate takes over by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cutover {
    /// As soon as it has caught up with the head (the default).
    #[default]
    Auto,
    /// When an operator promotes it (after looking at the diff).
    Manual,
}

/// What a transition asks the actor to do, in order, after the new record
/// is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Serve reads from this generation from now on.
    Serve(GenRecord),
    /// Start this generation's projector (from its checkpoint).
    Run(GenRecord),
    /// Stop this generation's projector but keep its keyspace.
    Park(GenRecord),
    /// Stop it and drop its keyspace once its last reader is done.
    Retire(GenRecord),
    /// Make the plugin file hold this content again, so that the directory
    /// states what runs.
    RewriteFile(ContentHash),
}

/// Why a transition was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Conflict(String),
    #[error("lifecycle bug: {0}")]
    Illegal(String),
}

/// Something that happens to a plugin.
#[derive(Debug, Clone)]
pub enum Transition {
    /// Its first generation (or the first after only failures) starts.
    Started(GenRecord),
    /// A new candidate starts beside the serving generation.
    CandidateStarted(GenRecord, Purpose),
    /// Content that did not load.
    Rejected(ContentHash, ErrorReport),
    /// The candidate with this keyspace failed its replay.
    CandidateFailed(String, ErrorReport),
    /// The candidate with this keyspace has caught up with the head.
    CaughtUp(String, Cutover),
    Promote,
    Rollback,
    Discard,
    KeepServing,
    PreviousExpired,
    Restarted {
        now_ms: u64,
        retention_ms: u64,
    },
    Removed,
    /// The process died inside a batch of the generation with this keyspace.
    Quarantined(String, Quarantine),
    /// An operator lets the quarantined generation with this keyspace run again.
    Released(String),
}

/// What to do with content an operator asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallDecision {
    /// It is already serving, replaying, or known to fail.
    Unchanged,
    /// It is what serves; a candidate of other content is to be discarded.
    KeepServing,
    /// It is the previous generation's: roll back to it.
    Rollback,
    /// Load it, then `Started` (nothing serves) or `CandidateStarted`.
    Load { serving_exists: bool },
}

impl PluginRecord {
    /// What installing `hash` means for this plugin. `fresh` (a rebuild)
    /// builds even content that is serving or failed.
    pub fn decide_install(&self, hash: &ContentHash, fresh: bool) -> InstallDecision {
        let serving_exists = self.serving.is_some();
        if fresh {
            return InstallDecision::Load { serving_exists };
        }
        let is = |g: Option<&ContentHash>| g == Some(hash);
        if is(self.candidate.as_ref().map(|c| &c.generation.hash))
            || is(self.failed.as_ref().map(|f| &f.hash))
        {
            return InstallDecision::Unchanged;
        }
        if is(self.serving.as_ref().map(|g| &g.hash)) {
            return if self.candidate.is_some() || self.failed.is_some() {
                InstallDecision::KeepServing
            } else {
                InstallDecision::Unchanged
            };
        }
        if is(self.previous.as_ref().map(|p| &p.generation.hash)) {
            return InstallDecision::Rollback;
        }
        InstallDecision::Load { serving_exists }
    }

    /// Apply `t`, returning the effects to carry out. On `Err` the record
    /// is unchanged.
    pub fn apply(&mut self, t: Transition) -> Result<Vec<Effect>, Refused> {
        let mut next = self.clone();
        let effects = next.transition(t)?;
        *self = next;
        Ok(effects)
    }

    fn transition(&mut self, t: Transition) -> Result<Vec<Effect>, Refused> {
        let mut effects = Vec::new();
        match t {
            Transition::Started(g) => {
                if self.serving.is_some() {
                    return Err(Refused::Illegal(
                        "a first generation while another serves".into(),
                    ));
                }
                self.desired = Some(g.hash.clone());
                self.failed = None;
                if let Some(c) = self.candidate.take() {
                    effects.push(Effect::Retire(c.generation));
                }
                self.serving = Some(g.clone());
                effects.push(Effect::Serve(g.clone()));
                effects.push(Effect::Run(g));
            }
            Transition::CandidateStarted(g, purpose) => {
                if self.serving.is_none() {
                    return Err(Refused::Illegal("a candidate with nothing serving".into()));
                }
                if purpose == Purpose::Rollback {
                    return Err(Refused::Illegal(
                        "rollback candidates come from the previous generation".into(),
                    ));
                }
                self.desired = Some(g.hash.clone());
                self.failed = None;
                if let Some(old) = self.candidate.take() {
                    Role::Candidate.check(Role::Retired)?;
                    effects.push(Effect::Retire(old.generation));
                }
                self.candidate = Some(CandidateRecord {
                    generation: g.clone(),
                    purpose,
                });
                effects.push(Effect::Run(g));
            }
            Transition::Rejected(hash, error) => {
                self.desired = Some(hash.clone());
                self.failed = Some(FailedRecord { hash, error });
            }
            Transition::CandidateFailed(keyspace, error) => {
                let c = self.take_candidate(&keyspace)?;
                Role::Candidate.check(Role::Failed)?;
                self.failed = Some(FailedRecord {
                    hash: c.generation.hash.clone(),
                    error,
                });
                if c.purpose == Purpose::Rollback {
                    // The generation that was rolled back to could not catch
                    // up: the directory goes back to what serves.
                    let serving = self.serving.as_ref().expect("candidates have a serving");
                    self.desired = Some(serving.hash.clone());
                    effects.push(Effect::RewriteFile(serving.hash.clone()));
                }
                effects.push(Effect::Retire(c.generation));
            }
            Transition::CaughtUp(keyspace, cutover) => {
                let c = self.candidate_of(&keyspace)?;
                if cutover == Cutover::Auto || c.purpose == Purpose::Rollback {
                    effects = self.cutover()?;
                }
            }
            Transition::Promote => {
                if self.candidate.is_none() {
                    return Err(Refused::Conflict("there is no candidate to promote".into()));
                }
                effects = self.cutover()?;
            }
            Transition::Rollback => {
                let Some(previous) = self.previous.take() else {
                    return Err(Refused::Conflict(
                        "there is no previous generation to roll back to".into(),
                    ));
                };
                Role::Previous.check(Role::Candidate)?;
                if let Some(old) = self.candidate.take() {
                    effects.push(Effect::Retire(old.generation));
                }
                let g = previous.generation;
                self.desired = Some(g.hash.clone());
                self.failed = None;
                self.candidate = Some(CandidateRecord {
                    generation: g.clone(),
                    purpose: Purpose::Rollback,
                });
                effects.push(Effect::RewriteFile(g.hash.clone()));
                effects.push(Effect::Run(g));
            }
            Transition::Discard => {
                let Some(c) = self.candidate.take() else {
                    return Err(Refused::Conflict("there is no candidate to discard".into()));
                };
                Role::Candidate.check(Role::Retired)?;
                let serving = self.serving.as_ref().expect("candidates have a serving");
                self.desired = Some(serving.hash.clone());
                effects.push(Effect::RewriteFile(serving.hash.clone()));
                effects.push(Effect::Retire(c.generation));
            }
            Transition::KeepServing => {
                let serving = self
                    .serving
                    .clone()
                    .ok_or_else(|| Refused::Illegal("nothing serves".into()))?;
                self.desired = Some(serving.hash);
                self.failed = None;
                if let Some(c) = self.candidate.take() {
                    effects.push(Effect::Retire(c.generation));
                }
            }
            Transition::PreviousExpired => {
                if let Some(p) = self.previous.take() {
                    Role::Previous.check(Role::Retired)?;
                    effects.push(Effect::Retire(p.generation));
                }
            }
            Transition::Restarted {
                now_ms,
                retention_ms,
            } => {
                if let Some(g) = &self.serving {
                    effects.push(Effect::Serve(g.clone()));
                    effects.push(Effect::Run(g.clone()));
                }
                if let Some(c) = &self.candidate {
                    effects.push(Effect::Run(c.generation.clone()));
                }
                if self
                    .previous
                    .as_ref()
                    .is_some_and(|p| now_ms.saturating_sub(p.retired_at_ms) >= retention_ms)
                {
                    effects.extend(self.transition(Transition::PreviousExpired)?);
                }
            }
            Transition::Removed => {
                let all: Vec<GenRecord> = self.keyspaces().cloned().collect();
                *self = PluginRecord::default();
                effects.extend(all.into_iter().map(Effect::Retire));
            }
            Transition::Quarantined(keyspace, quarantine) => {
                let g = self
                    .running_mut(&keyspace)
                    .ok_or_else(|| Refused::Conflict(format!("{keyspace} does not run")))?;
                g.quarantine = Some(quarantine);
            }
            Transition::Released(keyspace) => {
                let g = self
                    .running_mut(&keyspace)
                    .filter(|g| g.quarantine.is_some())
                    .ok_or_else(|| Refused::Conflict("no generation is quarantined".into()))?;
                g.quarantine = None;
                effects.push(Effect::Run(g.clone()));
            }
        }
        Ok(effects)
    }

    fn candidate_of(&self, keyspace: &str) -> Result<&CandidateRecord, Refused> {
        self.candidate
            .as_ref()
            .filter(|c| c.generation.keyspace == keyspace)
            .ok_or_else(|| Refused::Conflict(format!("{keyspace} is not the candidate")))
    }

    fn take_candidate(&mut self, keyspace: &str) -> Result<CandidateRecord, Refused> {
        self.candidate_of(keyspace)?;
        Ok(self.candidate.take().expect("checked"))
    }

    /// The candidate serves; the serving generation is parked as previous;
    /// the generation previous before is retired.
    fn cutover(&mut self) -> Result<Vec<Effect>, Refused> {
        let c = self
            .candidate
            .take()
            .ok_or_else(|| Refused::Conflict("there is no candidate".into()))?;
        Role::Candidate.check(Role::Serving)?;
        let mut effects = vec![Effect::Serve(c.generation.clone())];
        if let Some(old) = self.previous.take() {
            Role::Previous.check(Role::Retired)?;
            effects.push(Effect::Retire(old.generation));
        }
        if let Some(s) = self.serving.take() {
            Role::Serving.check(Role::Previous)?;
            effects.push(Effect::Park(s.clone()));
            self.previous = Some(PreviousRecord {
                generation: s,
                retired_at_ms: crate::clock::now_ms(),
            });
        }
        self.serving = Some(c.generation);
        Ok(effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::settings::PluginSettings;

    fn generation(content: &[u8]) -> GenRecord {
        GenRecord::new(ContentHash::of(content), PluginSettings::default())
    }

    fn error() -> ErrorReport {
        ErrorReport::new("boom", None)
    }

    /// A plugin serving `a`, with `b` replaying as a candidate.
    fn upgrading() -> (PluginRecord, GenRecord, GenRecord) {
        let (a, b) = (generation(b"a"), generation(b"b"));
        let mut r = PluginRecord::default();
        r.apply(Transition::Started(a.clone())).unwrap();
        r.apply(Transition::CandidateStarted(b.clone(), Purpose::Upgrade))
            .unwrap();
        (r, a, b)
    }

    #[test]
    fn the_role_table_allows_only_its_transitions() {
        assert!(Role::Candidate.check(Role::Serving).is_ok());
        assert!(Role::Serving.check(Role::Candidate).is_err());
        assert!(Role::Previous.check(Role::Serving).is_err());
        assert!(Role::Failed.check(Role::Serving).is_err());
        assert!(Role::Retired.may_become().is_empty());
    }

    #[test]
    fn a_first_generation_serves_at_once() {
        let a = generation(b"a");
        let mut r = PluginRecord::default();
        assert_eq!(
            r.decide_install(&a.hash, false),
            InstallDecision::Load {
                serving_exists: false
            }
        );
        let effects = r.apply(Transition::Started(a.clone())).unwrap();
        assert_eq!(
            effects,
            vec![Effect::Serve(a.clone()), Effect::Run(a.clone())]
        );
        assert_eq!(r.serving, Some(a.clone()));
        assert_eq!(r.decide_install(&a.hash, false), InstallDecision::Unchanged);
    }

    #[test]
    fn an_auto_cutover_parks_the_old_generation_as_previous() {
        let (mut r, a, b) = upgrading();
        let effects = r
            .apply(Transition::CaughtUp(b.keyspace.clone(), Cutover::Auto))
            .unwrap();
        assert_eq!(
            effects,
            vec![Effect::Serve(b.clone()), Effect::Park(a.clone())]
        );
        assert_eq!(r.serving, Some(b));
        assert_eq!(r.previous.as_ref().map(|p| &p.generation), Some(&a));
        assert!(r.candidate.is_none());
    }

    #[test]
    fn a_manual_cutover_waits_for_promote() {
        let (mut r, a, b) = upgrading();
        let effects = r
            .apply(Transition::CaughtUp(b.keyspace.clone(), Cutover::Manual))
            .unwrap();
        assert!(effects.is_empty());
        assert_eq!(r.serving, Some(a.clone()));
        r.apply(Transition::Promote).unwrap();
        assert_eq!(r.serving, Some(b));
        assert_eq!(
            r.apply(Transition::Promote).map(|_| ()),
            Err(Refused::Conflict("there is no candidate to promote".into()))
        );
    }

    #[test]
    fn a_failed_candidate_is_remembered_and_not_retried() {
        let (mut r, a, b) = upgrading();
        let effects = r
            .apply(Transition::CandidateFailed(b.keyspace.clone(), error()))
            .unwrap();
        assert_eq!(effects, vec![Effect::Retire(b.clone())]);
        assert_eq!(r.serving, Some(a.clone()));
        assert_eq!(r.failed.as_ref().map(|f| &f.hash), Some(&b.hash));
        assert_eq!(r.decide_install(&b.hash, false), InstallDecision::Unchanged);
        assert_eq!(
            r.decide_install(&b.hash, true),
            InstallDecision::Load {
                serving_exists: true
            }
        );
        // Putting the serving content back clears the failure.
        assert_eq!(
            r.decide_install(&a.hash, false),
            InstallDecision::KeepServing
        );
        r.apply(Transition::KeepServing).unwrap();
        assert!(r.failed.is_none());
        assert_eq!(r.desired, Some(a.hash));
    }

    #[test]
    fn a_stale_candidate_event_is_refused() {
        let (mut r, _, _) = upgrading();
        let before = r.clone();
        assert!(
            r.apply(Transition::CaughtUp("other".into(), Cutover::Auto))
                .is_err()
        );
        assert_eq!(r, before);
    }

    #[test]
    fn rollback_brings_the_previous_generation_back_through_a_catch_up() {
        let (mut r, a, b) = upgrading();
        r.apply(Transition::CaughtUp(b.keyspace.clone(), Cutover::Auto))
            .unwrap();
        assert_eq!(r.decide_install(&a.hash, false), InstallDecision::Rollback);
        let effects = r.apply(Transition::Rollback).unwrap();
        assert_eq!(
            effects,
            vec![Effect::RewriteFile(a.hash.clone()), Effect::Run(a.clone())]
        );
        assert_eq!(r.desired, Some(a.hash.clone()));
        // Even with a manual cutover, a rollback takes over once caught up.
        let effects = r
            .apply(Transition::CaughtUp(a.keyspace.clone(), Cutover::Manual))
            .unwrap();
        assert_eq!(
            effects,
            vec![Effect::Serve(a.clone()), Effect::Park(b.clone())]
        );
        assert_eq!(r.previous.map(|p| p.generation), Some(b));
        assert!(PluginRecord::default().apply(Transition::Rollback).is_err());
    }

    #[test]
    fn a_second_cutover_retires_the_generation_before_the_previous() {
        let (mut r, a, b) = upgrading();
        r.apply(Transition::CaughtUp(b.keyspace.clone(), Cutover::Auto))
            .unwrap();
        let c = generation(b"c");
        r.apply(Transition::CandidateStarted(c.clone(), Purpose::Upgrade))
            .unwrap();
        let effects = r
            .apply(Transition::CaughtUp(c.keyspace.clone(), Cutover::Auto))
            .unwrap();
        assert_eq!(
            effects,
            vec![
                Effect::Serve(c.clone()),
                Effect::Retire(a),
                Effect::Park(b.clone())
            ]
        );
    }

    #[test]
    fn a_new_file_replaces_a_replaying_candidate() {
        let (mut r, _, b) = upgrading();
        let c = generation(b"c");
        let effects = r
            .apply(Transition::CandidateStarted(c.clone(), Purpose::Upgrade))
            .unwrap();
        assert_eq!(effects, vec![Effect::Retire(b), Effect::Run(c)]);
    }

    #[test]
    fn discarding_the_candidate_puts_the_serving_content_back_in_the_directory() {
        let (mut r, a, b) = upgrading();
        let effects = r.apply(Transition::Discard).unwrap();
        assert_eq!(
            effects,
            vec![Effect::RewriteFile(a.hash.clone()), Effect::Retire(b)]
        );
        assert_eq!(r.desired, Some(a.hash));
        assert!(r.apply(Transition::Discard).is_err());
    }

    #[test]
    fn restart_resumes_serving_and_candidate_and_keeps_failed_and_previous() {
        let (mut r, a, b) = upgrading();
        r.apply(Transition::CaughtUp(b.keyspace.clone(), Cutover::Auto))
            .unwrap();
        let c = generation(b"c");
        r.apply(Transition::CandidateStarted(c.clone(), Purpose::Upgrade))
            .unwrap();
        r.apply(Transition::Rejected(ContentHash::of(b"d"), error()))
            .unwrap();
        let stored = r.clone();
        let effects = r
            .apply(Transition::Restarted {
                now_ms: crate::clock::now_ms(),
                retention_ms: 60_000,
            })
            .unwrap();
        assert_eq!(
            effects,
            vec![Effect::Serve(b.clone()), Effect::Run(b), Effect::Run(c)]
        );
        assert_eq!(r, stored, "a restart changes nothing it does not have to");
        assert_eq!(r.previous.as_ref().map(|p| &p.generation), Some(&a));
        assert!(r.failed.is_some());
    }

    #[test]
    fn restart_retires_a_previous_generation_past_its_retention() {
        let (mut r, a, b) = upgrading();
        r.apply(Transition::CaughtUp(b.keyspace.clone(), Cutover::Auto))
            .unwrap();
        let effects = r
            .apply(Transition::Restarted {
                now_ms: crate::clock::now_ms() + 10_000,
                retention_ms: 5_000,
            })
            .unwrap();
        assert_eq!(
            effects,
            vec![Effect::Serve(b.clone()), Effect::Run(b), Effect::Retire(a)]
        );
        assert!(r.previous.is_none());
    }

    #[test]
    fn restart_of_a_rollback_in_progress_resumes_it() {
        let (mut r, a, b) = upgrading();
        r.apply(Transition::CaughtUp(b.keyspace.clone(), Cutover::Auto))
            .unwrap();
        r.apply(Transition::Rollback).unwrap();
        let effects = r
            .apply(Transition::Restarted {
                now_ms: crate::clock::now_ms(),
                retention_ms: 60_000,
            })
            .unwrap();
        assert_eq!(
            effects,
            vec![Effect::Serve(b.clone()), Effect::Run(b), Effect::Run(a)]
        );
    }

    #[test]
    fn a_quarantined_generation_does_not_run_after_a_restart_until_released() {
        let (mut r, a, b) = upgrading();
        let q = Quarantine {
            reason: "aborted".into(),
            from: crate::log::Position(5),
            to: crate::log::Position(9),
            at_ms: 1,
        };
        r.apply(Transition::Quarantined(b.keyspace.clone(), q.clone()))
            .unwrap();
        assert!(
            r.apply(Transition::Quarantined("nope".into(), q)).is_err(),
            "only a generation that runs"
        );
        let effects = r
            .apply(Transition::Restarted {
                now_ms: crate::clock::now_ms(),
                retention_ms: 60_000,
            })
            .unwrap();
        let quarantined = r.candidate.as_ref().unwrap().generation.clone();
        assert!(quarantined.quarantine.is_some());
        // The actor sees the quarantine on the record it is asked to run.
        assert_eq!(
            effects,
            vec![
                Effect::Serve(a.clone()),
                Effect::Run(a),
                Effect::Run(quarantined)
            ]
        );
        let effects = r.apply(Transition::Released(b.keyspace.clone())).unwrap();
        let released = r.candidate.as_ref().unwrap().generation.clone();
        assert!(released.quarantine.is_none());
        assert_eq!(effects, vec![Effect::Run(released)]);
        assert!(r.apply(Transition::Released(b.keyspace)).is_err());
    }

    #[test]
    fn removal_retires_every_generation() {
        let (mut r, a, b) = upgrading();
        let effects = r.apply(Transition::Removed).unwrap();
        assert_eq!(effects, vec![Effect::Retire(a), Effect::Retire(b)]);
        assert!(r.is_empty());
    }

    #[test]
    fn rejected_content_without_a_serving_generation_is_kept_as_failed() {
        let mut r = PluginRecord::default();
        let h = ContentHash::of(b"junk");
        r.apply(Transition::Rejected(h.clone(), error())).unwrap();
        assert_eq!(r.decide_install(&h, false), InstallDecision::Unchanged);
        let a = generation(b"a");
        assert_eq!(
            r.decide_install(&a.hash, false),
            InstallDecision::Load {
                serving_exists: false
            }
        );
        r.apply(Transition::Started(a)).unwrap();
        assert!(r.failed.is_none());
    }
}
