//! (infra checks: filled in by the infrastructure work)
