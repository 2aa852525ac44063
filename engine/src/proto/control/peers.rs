//! Adding, changing and removing peers while the node runs.

use std::time::Duration;

use super::*;

impl ControlPlane {
    /// Adds a peer while running; returns its id (a removed peer's slot may be reused).
    ///
    /// # Errors
    /// [`ConfigError`] naming the field and value, by the same rules as at start (low-order, own or
    /// duplicate key, unspecified endpoint, allowed IPs another peer holds).
    pub fn add_peer(&mut self, config: PeerConfig) -> Result<PeerId, ConfigError> {
        let slot = self
            .peers
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.peers.len());
        self.check_peer_config(slot, &config, None)?;
        let id = PeerId(slot as u32);
        let keys = PeerKeys::new(
            &self.identity,
            config.public_key,
            config.preshared_key.as_ref().map(|k| *k.as_bytes()),
        );
        let mut peer = Peer::new(keys, &config, self.config.times, self.epoch);
        peer.endpoint = endpoint_of(id, &config, &self.by_key);
        match self.peers.get_mut(slot) {
            Some(s) => *s = Some(peer),
            None => self.peers.push(Some(peer)),
        }
        self.by_key.insert(config.public_key, id);
        if let Some(handle) = self.peer_handle(id) {
            self.command(id, DataCommand::AddPeer(handle));
        }
        self.rebuild_routes();
        if config.persistent_keepalive.is_some()
            && self.peer(id).is_some_and(|p| p.endpoint.is_some())
        {
            self.send_keepalive(id);
        }
        Ok(id)
    }

    /// Changes a running peer's PSK, endpoint, allowed IPs or persistent keepalive. Its sessions stay
    /// (a new PSK applies from the next handshake, as wireguard-go). The public key cannot change: remove
    /// the peer and add the new one instead.
    ///
    /// # Errors
    /// [`ConfigError`] for an unknown peer, a different public key, or any rule of [`add_peer`](Self::add_peer).
    pub fn update_peer(&mut self, peer: PeerId, config: PeerConfig) -> Result<(), ConfigError> {
        let field = format!("peers[{}]", peer.0);
        let Some(current) = self.peer(peer) else {
            return Err(ConfigError::invalid(field, peer, "no such peer"));
        };
        if current.keys.public != config.public_key {
            return Err(ConfigError::invalid(
                format!("{field}.public_key"),
                config.public_key,
                "cannot change; remove the peer and add the new key",
            ));
        }
        self.check_peer_config(peer.0 as usize, &config, Some(peer))?;
        let keys = PeerKeys::new(
            &self.identity,
            config.public_key,
            config.preshared_key.as_ref().map(|k| *k.as_bytes()),
        );
        let endpoint = endpoint_of(peer, &config, &self.by_key);
        if let Some(endpoint) = endpoint {
            self.command(peer, DataCommand::SetEndpoint { peer, endpoint });
        }
        if let Some(p) = self.peer_mut(peer) {
            p.keys = keys;
            if endpoint.is_some() {
                p.endpoint = endpoint;
            }
            p.allowed_ips = config.allowed_ips.clone();
            p.persistent_keepalive = config.persistent_keepalive;
            p.timers.set_persistent_keepalive(
                config
                    .persistent_keepalive
                    .map(|s| Duration::from_secs(u64::from(s))),
            );
        }
        self.rebuild_routes();
        Ok(())
    }

    /// Removes a peer: its keys are erased, its indices freed, its routes and held packets dropped.
    /// Returns whether it existed.
    pub fn remove_peer(&mut self, peer: PeerId) -> bool {
        let Some(mut removed) = self.peers.get_mut(peer.0 as usize).and_then(Option::take) else {
            return false;
        };
        let pending = removed.handshake.take().map(|s| s.local_index);
        self.free_indices(pending);
        // The data path erases the keys and reports each keypair's index as retired.
        self.command(peer, DataCommand::RemovePeer { peer });
        self.by_key.remove(&removed.keys.public);
        self.rebuild_routes();
        if removed.is_up {
            self.push_event(Event::PeerDown { peer });
        }
        true
    }

    pub(super) fn check_peer_config(
        &self,
        index: usize,
        config: &PeerConfig,
        replacing: Option<PeerId>,
    ) -> Result<(), ConfigError> {
        let others: Vec<(usize, PeerConfig)> = self
            .peers
            .iter()
            .enumerate()
            .filter(|(i, p)| p.is_some() && Some(PeerId(*i as u32)) != replacing)
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p.config_view())))
            .collect();
        crate::config::check_peer(
            index,
            config,
            &self.identity.public,
            others.iter().map(|(i, c)| (*i, c)),
        )?;
        crate::config::check_via(index, config, others.iter().map(|(i, c)| (*i, c)))
    }

    /// Rebuilds the allowed-IPs table and hands the new one to every data path.
    pub(super) fn rebuild_routes(&mut self) {
        self.routes = Arc::new(self.build_routes());
        for shard in 0..self.config.data_shards.max(1) {
            self.commands
                .push_back((shard, DataCommand::Routes(self.routes.clone())));
        }
    }

    pub(super) fn build_routes(&self) -> AllowedIps {
        let mut routes = AllowedIps::new();
        for (i, p) in self.peers.iter().enumerate() {
            if let Some(p) = p {
                for net in &p.allowed_ips {
                    routes.insert(*net, PeerId(i as u32));
                }
            }
        }
        routes
    }
}
