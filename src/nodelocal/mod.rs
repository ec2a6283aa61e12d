//! node-cache's own parts: flags, Corefile template and stub domains, networking setup.
