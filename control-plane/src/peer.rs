//! Who is on the other end of a gRPC call, by address: for the services' logs and for the
//! identity service's per-address brake. Connections arrive over TLS, so the TCP details sit
//! inside tonic's TLS connect info.

/// The caller's address for logs.
pub fn peer_of<T>(request: &tonic::Request<T>) -> String {
    remote_addr(request.extensions())
}

/// The caller's IP address, if the connection has one.
pub fn peer_ip<T>(request: &tonic::Request<T>) -> Option<std::net::IpAddr> {
    remote_socket_addr(request.extensions()).map(|a| a.ip())
}

/// The address of the connection a request came on, or `unknown`.
pub fn remote_addr(extensions: &http::Extensions) -> String {
    remote_socket_addr(extensions)
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn remote_socket_addr(extensions: &http::Extensions) -> Option<std::net::SocketAddr> {
    extensions
        .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
        .and_then(|info| info.get_ref().remote_addr())
}
