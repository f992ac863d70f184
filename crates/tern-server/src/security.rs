//! Authentication and authorization as configured: the authenticator chain and the ACL,
//! both reloadable without dropping connected clients.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tern_auth::{
    AclFile, Authenticator, Chain, HttpHook, HttpHookSettings, JwtAlgorithm, JwtAuthenticator, JwtSettings,
    PasswordFile, ScramFile, TokenSource,
};
use tern_core::{AllowAll, Broker, SharedAuthorizer};

use crate::config::AuthConfig;
use crate::ServeError;

/// The authenticators in force. Replaced whole on reload. Each lock is held only to clone or
/// replace an `Arc`, never across an `.await` and never with the other one.
#[derive(Default)]
pub struct Security {
    chain: RwLock<Arc<Chain>>,
    /// The SCRAM credentials for enhanced authentication, when `[auth] scram_file` is set.
    scram: RwLock<Option<Arc<ScramFile>>>,
}

impl Security {
    pub fn chain(&self) -> Arc<Chain> {
        self.chain.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The SCRAM credentials, if a SCRAM file is configured.
    pub fn scram(&self) -> Option<Arc<ScramFile>> {
        self.scram.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Loads every configured backend and the ACL; on error nothing is replaced.
    pub fn load(&self, auth: &AuthConfig, broker: &Broker) -> Result<(), ServeError> {
        let mut authenticators: Vec<Arc<dyn Authenticator>> = Vec::new();
        if let Some(path) = &auth.password_file {
            authenticators.push(Arc::new(PasswordFile::load(path)?));
        }
        if let Some(jwt) = &auth.jwt {
            let algorithm = match jwt.algorithm.as_str() {
                "RS256" => JwtAlgorithm::Rs256,
                "ES256" => JwtAlgorithm::Es256,
                _ => JwtAlgorithm::Hs256,
            };
            let mut settings = JwtSettings::new(algorithm, &jwt.key_file);
            settings.from = if jwt.token_in == "username" { TokenSource::Username } else { TokenSource::Password };
            settings.username_claim.clone_from(&jwt.username_claim);
            authenticators.push(Arc::new(JwtAuthenticator::new(settings)?));
        }
        if let Some(http) = &auth.http {
            let mut settings = HttpHookSettings::new(&http.url);
            settings.timeout = Duration::from_millis(http.timeout_ms);
            settings.cache_ttl = Duration::from_secs(http.cache_secs);
            authenticators.push(Arc::new(HttpHook::new(settings)?));
        }
        let scram = match &auth.scram_file {
            Some(path) => Some(Arc::new(ScramFile::load(path)?)),
            None => None,
        };
        let authorizer: SharedAuthorizer = match &auth.acl_file {
            Some(path) => Arc::new(AclFile::load(path)?),
            None => Arc::new(AllowAll),
        };
        *self.chain.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Chain::new(authenticators));
        *self.scram.write().unwrap_or_else(|p| p.into_inner()) = scram;
        broker.set_authorizer(authorizer);
        Ok(())
    }
}
