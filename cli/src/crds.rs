//! `weft crds`: the CustomResourceDefinitions this version of weft reads, as YAML documents
//! separated by `---` (the files of `manifests/crds/`, concatenated).

use std::process::ExitCode;

use weft_control_plane::policy::custom_resources;

pub fn run() -> ExitCode {
    match custom_resources::crd_files() {
        Ok(files) => {
            let texts: Vec<String> = files.into_iter().map(|(_, text)| text).collect();
            print!("{}", texts.join("---\n"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot render the CustomResourceDefinitions: {e:#}");
            ExitCode::FAILURE
        }
    }
}
