//! How many workload certificates the CA signs per second on one core: each one is what
//! `Certify` does after authentication (parse the CSR, verify its signature, check the identity,
//! sign a P-256 leaf). Run with `taskset -c 0 cargo run --release -p weft-certs --example
//! signing_rate [COUNT]`; `tests/bench/ca.sh` does that and prints the figure for
//! docs/performance.md.

use std::time::{Duration, Instant};

use weft_certs::{CertificateAuthority, RequestedCertificate, SpiffeId, WorkloadKey};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(5_000);
    let ca = CertificateAuthority::generate("cluster.local", Duration::from_secs(365 * 24 * 3600))?;
    // The CSRs are made up front: in the mesh each proxy makes its own key and CSR.
    let requests: Vec<(SpiffeId, Vec<u8>)> = (0..count)
        .map(|i| {
            let id = SpiffeId::new("cluster.local", "bench", &format!("sa-{i}"))?;
            let csr = WorkloadKey::generate()?.csr_der(&id)?;
            Ok((id, csr))
        })
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    let started = Instant::now();
    let mut bytes = 0;
    for (id, csr) in &requests {
        let request = RequestedCertificate::from_csr(csr, id)?;
        let issued = ca.sign(&request, Duration::from_secs(3600))?;
        bytes += issued.leaf.len();
    }
    let elapsed = started.elapsed();
    println!(
        "signed {count} P-256 workload certificates in {:.3} s: {:.0} certificates/s on one thread ({} bytes per leaf)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        bytes / count.max(1)
    );
    Ok(())
}
