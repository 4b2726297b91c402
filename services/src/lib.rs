//! The domain of Aion: tenancy, identity, authorisation, audit.
