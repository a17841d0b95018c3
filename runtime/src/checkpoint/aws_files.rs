//! The shared AWS files for the S3 client of checkpoints on object storage: a profile's
//! credentials, region and endpoint from `~/.aws/credentials` and `~/.aws/config`, as the AWS
//! command line and SDKs read them, for a user who keeps them there rather than in the
//! environment.
//!
//! - The profile is `AWS_PROFILE`, else `default`. In the credentials file its section is
//!   `[name]`; in the config file `[profile name]` (and `[default]` for the default).
//! - The files are `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE`, else the two under
//!   `~/.aws`. A key in the credentials file wins over the same key in the config file.
//! - The environment wins over both: a setting is taken from the files only when its
//!   variable (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//!   `AWS_REGION` or `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`) is not set.
//! - A profile named by `AWS_PROFILE` that neither file has is an error; a missing
//!   `default` is not (the environment may say everything).
//!
//! Only static keys are read: a profile that assumes a role, runs a `credential_process` or
//! signs in through SSO needs the SDK's machinery, which the S3 client here does not have;
//! such a profile is refused with a message saying to export its credentials instead.

use std::path::{Path, PathBuf};

/// What a profile sets (each `None` when neither file has it, or the environment does).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// Keys of a profile that need more than static credentials.
const UNSUPPORTED: [&str; 4] = [
    "role_arn",
    "credential_process",
    "sso_session",
    "sso_start_url",
];

/// The profile the environment `env` selects, from the files it names (or those under
/// `home`/.aws), with the settings `env` already gives left out.
pub fn load(env: impl Fn(&str) -> Option<String>, home: Option<&Path>) -> Result<Profile, String> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    let named = set("AWS_PROFILE");
    let name = named.clone().unwrap_or_else(|| "default".to_string());
    let file = |var: &str, default: &str| -> Option<PathBuf> {
        set(var)
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".aws").join(default)))
    };
    let config_section = if name == "default" {
        "default".to_string()
    } else {
        format!("profile {name}")
    };
    let mut found = false;
    let mut values: Vec<(String, String)> = Vec::new();
    // The config file first, so that the credentials file's keys override its.
    for (path, section) in [
        (file("AWS_CONFIG_FILE", "config"), config_section.as_str()),
        (
            file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            name.as_str(),
        ),
    ] {
        let Some(path) = path else { continue };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let ini = ini::Ini::load_from_str(&text)
            .map_err(|e| format!("{} is not an AWS config file: {e}", path.display()))?;
        if let Some(props) = ini.section(Some(section)) {
            found = true;
            for (k, v) in props.iter() {
                values.retain(|(key, _)| key != k);
                values.push((k.to_string(), v.to_string()));
            }
        }
    }
    if !found {
        return match named {
            Some(name) => Err(format!(
                "AWS_PROFILE is `{name}`, which neither {} nor {} has",
                file("AWS_CONFIG_FILE", "config")
                    .map_or("the config file".into(), |p| p.display().to_string()),
                file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
                    .map_or("the credentials file".into(), |p| p.display().to_string()),
            )),
            None => Ok(Profile::default()),
        };
    }
    let get = |key: &str| {
        values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(key) = UNSUPPORTED.iter().find(|k| get(k).is_some()) {
        return Err(format!(
            "the AWS profile `{name}` uses `{key}`, which weir's S3 client cannot follow (it \
             reads static keys only): export the profile's credentials instead, e.g. \
             `eval \"$(aws configure export-credentials --profile {name} --format env)\"`"
        ));
    }
    let unless = |vars: &[&str], key: &str| {
        if vars.iter().any(|v| set(v).is_some()) {
            None
        } else {
            get(key)
        }
    };
    Ok(Profile {
        access_key_id: unless(&["AWS_ACCESS_KEY_ID"], "aws_access_key_id"),
        secret_access_key: unless(&["AWS_SECRET_ACCESS_KEY"], "aws_secret_access_key"),
        session_token: unless(&["AWS_SESSION_TOKEN"], "aws_session_token"),
        region: unless(&["AWS_REGION", "AWS_DEFAULT_REGION"], "region"),
        endpoint_url: unless(&["AWS_ENDPOINT_URL"], "endpoint_url"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn profiles_come_from_both_files_and_the_environment_wins() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = sdefault\n\n\
             [ci]\naws_access_key_id=AKCI\naws_secret_access_key=sci\naws_session_token=tci\n\
             region = eu-west-3\n",
        )
        .unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[default]\nregion = us-east-2\n\n[profile ci]\nregion = eu-west-1\n\
             endpoint_url = http://127.0.0.1:9000\n\n[profile role]\nrole_arn = arn:aws:iam::1:role/x\n",
        )
        .unwrap();
        let home = Some(home.path());
        assert_eq!(
            load(env(&[]), home).unwrap(),
            Profile {
                access_key_id: Some("AKDEFAULT".into()),
                secret_access_key: Some("sdefault".into()),
                region: Some("us-east-2".into()),
                ..Profile::default()
            }
        );
        // The credentials file's region wins over the config file's.
        assert_eq!(
            load(env(&[("AWS_PROFILE", "ci")]), home).unwrap(),
            Profile {
                access_key_id: Some("AKCI".into()),
                secret_access_key: Some("sci".into()),
                session_token: Some("tci".into()),
                region: Some("eu-west-3".into()),
                endpoint_url: Some("http://127.0.0.1:9000".into()),
            }
        );
        // What the environment sets is left to it.
        let p = load(
            env(&[
                ("AWS_PROFILE", "ci"),
                ("AWS_ACCESS_KEY_ID", "AKENV"),
                ("AWS_DEFAULT_REGION", "ap-south-1"),
            ]),
            home,
        )
        .unwrap();
        assert_eq!(p.access_key_id, None);
        assert_eq!(p.region, None);
        assert_eq!(p.secret_access_key.as_deref(), Some("sci"));
        let err = load(env(&[("AWS_PROFILE", "nope")]), home).unwrap_err();
        assert!(
            err.contains("`nope`") && err.contains("credentials"),
            "{err}"
        );
        let err = load(env(&[("AWS_PROFILE", "role")]), home).unwrap_err();
        assert!(
            err.contains("role_arn") && err.contains("export-credentials"),
            "{err}"
        );
        // Files named by the environment; none at all is no profile.
        assert_eq!(load(env(&[]), None).unwrap(), Profile::default());
        let other = tempfile::tempdir().unwrap();
        let creds = other.path().join("c");
        std::fs::write(&creds, "[default]\naws_access_key_id = AKFILE\n").unwrap();
        let p = load(
            env(&[("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap())]),
            None,
        )
        .unwrap();
        assert_eq!(p.access_key_id.as_deref(), Some("AKFILE"));
    }
}
