//! A blocking client of the control API, used by the `mesh` CLI and `mesh-testnet`.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::ApiError;
use crate::home::NodeHome;
use crate::NodeError;

/// A client bound to one node's control API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl ApiClient {
    /// A client for the daemon running on `home` (reads `api.addr` and `api.token`).
    pub fn for_home(home: &NodeHome) -> Result<Self, NodeError> {
        home.load_config()?;
        let addr = std::fs::read_to_string(home.api_addr_path()).map_err(|_| {
            NodeError::Unavailable(format!(
                "no mesh daemon is running for {}: start it with `mesh node run --home {}`",
                home.root().display(),
                home.root().display()
            ))
        })?;
        Ok(Self::new(addr.trim(), home.load_token().ok()))
    }

    /// A client for the API at `addr` (`host:port`).
    pub fn new(addr: &str, token: Option<String>) -> Self {
        ApiClient {
            base: format!("http://{addr}"),
            token,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .build(),
        }
    }

    fn map_err(&self, e: ureq::Error) -> NodeError {
        match e {
            ureq::Error::Status(code, resp) => {
                let body = resp.into_string().unwrap_or_default();
                match serde_json::from_str::<ApiError>(&body) {
                    Ok(err) => match err.kind.as_str() {
                        "not_found" => NodeError::NotFound(err.error),
                        "rejected" | "unauthorized" => NodeError::Rejected(err.error),
                        "unavailable" => NodeError::Unavailable(err.error),
                        "invalid_manifest" => NodeError::InvalidManifest(vec![err.error]),
                        _ => NodeError::Usage(err.error),
                    },
                    Err(_) => NodeError::Network(format!("control API answered {code}: {body}")),
                }
            }
            ureq::Error::Transport(t) => NodeError::Unavailable(format!(
                "cannot reach the mesh daemon at {}: {t}; is `mesh node run` running for this home?",
                self.base
            )),
        }
    }

    fn call_get(&self, path: &str) -> Result<ureq::Response, NodeError> {
        self.agent
            .get(&format!("{}{path}", self.base))
            .timeout(Duration::from_secs(60))
            .call()
            .map_err(|e| self.map_err(e))
    }

    /// `GET path` as JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, NodeError> {
        self.call_get(path)?
            .into_json()
            .map_err(|e| NodeError::Network(format!("bad response from the daemon: {e}")))
    }

    /// `GET path` as text (for `/metrics`), at most 16 MiB.
    pub fn get_text(&self, path: &str) -> Result<String, NodeError> {
        let resp = self.call_get(path)?;
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(resp.into_reader(), 16 << 20),
            &mut text,
        )
        .map_err(|e| NodeError::Network(format!("bad response from the daemon: {e}")))?;
        Ok(text)
    }

    fn post_raw<B: Serialize>(&self, path: &str, body: &B) -> Result<ureq::Response, NodeError> {
        let mut req = self.agent.post(&format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        req.send_json(body).map_err(|e| self.map_err(e))
    }

    /// `POST path` with a JSON body, JSON answer.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, NodeError> {
        self.post_raw(path, body)?
            .into_json()
            .map_err(|e| NodeError::Network(format!("bad response from the daemon: {e}")))
    }

    /// `POST path`, then calls `on_line` with each JSON line of the streamed answer.
    pub fn post_lines<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        mut on_line: impl FnMut(T),
    ) -> Result<(), NodeError> {
        let reader = BufReader::new(self.post_raw(path, body)?.into_reader());
        for line in reader.lines() {
            let line =
                line.map_err(|e| NodeError::Network(format!("stream from the daemon broke: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(&line)
                .map_err(|e| NodeError::Network(format!("bad event from the daemon: {e}")))?;
            on_line(event);
        }
        Ok(())
    }
}
