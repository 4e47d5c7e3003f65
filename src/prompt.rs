//! `vars_prompt`: values a play asks the user for, asked once before the run starts (Ansible
//! asks when the play starts; asking first means a long run never stops halfway for an
//! answer). A name given with `-e` is not asked. Without a terminal, the default is taken,
//! and a prompt without one is an error before anything runs. `private` answers (the default)
//! are not echoed, `confirm` asks twice, `encrypt` stores the answer hashed (`password_hash`),
//! and every answer joins the play's variables, over its `vars` and `vars_files`.

use crate::playbook::{Playbook, Prompt};
use crate::template::{Templar, Vars};
use serde_json::{json, Value};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PromptError {
    #[error("{location}: vars_prompt '{name}': no terminal to ask on and no default; give it with -e {name}=...")]
    NoTerminal { location: String, name: String },
    #[error("{location}: vars_prompt '{name}': the two answers differ")]
    Mismatch { location: String, name: String },
    #[error("{location}: vars_prompt '{name}': {message}")]
    Other { location: String, name: String, message: String },
}

/// Who answers: the terminal, or a test.
pub trait Asker {
    /// Can questions be asked at all?
    fn interactive(&self) -> bool;
    /// The answer to `question` (without its line end); `private`: not echoed.
    fn ask(&mut self, question: &str, private: bool) -> std::io::Result<String>;
}

/// The terminal (stdin and stderr).
pub struct Terminal;

impl Asker for Terminal {
    fn interactive(&self) -> bool {
        use std::io::IsTerminal;
        std::io::stdin().is_terminal()
    }

    fn ask(&mut self, question: &str, private: bool) -> std::io::Result<String> {
        if private {
            return rpassword::prompt_password(question);
        }
        use std::io::Write;
        let mut err = std::io::stderr();
        write!(err, "{question}")?;
        err.flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

/// Ask every play's prompts (those `extra` doesn't answer) and put the answers in the plays'
/// variables.
pub fn answer(pb: &mut Playbook, extra: &Vars, asker: &mut dyn Asker, templar: &Templar) -> Result<(), PromptError> {
    for play in &mut pb.plays {
        for p in play.vars_prompt.clone() {
            if extra.contains_key(&p.name) {
                continue;
            }
            let value = ask_one(&p, asker, templar)?;
            play.vars.insert(p.name.clone(), value);
        }
    }
    Ok(())
}

fn ask_one(p: &Prompt, asker: &mut dyn Asker, templar: &Templar) -> Result<Value, PromptError> {
    let location = p.location.to_string();
    let other = |message: String| PromptError::Other { location: location.clone(), name: p.name.clone(), message };
    let answer = if !asker.interactive() {
        p.default.clone().ok_or_else(|| PromptError::NoTerminal { location: location.clone(), name: p.name.clone() })?
    } else {
        let question = match &p.default {
            Some(d) if !p.private => format!("{} [{d}]: ", p.prompt),
            _ => format!("{}: ", p.prompt),
        };
        let mut a = asker.ask(&question, p.private).map_err(|e| other(e.to_string()))?;
        if p.confirm {
            let again = asker.ask(&format!("confirm {question}"), p.private).map_err(|e| other(e.to_string()))?;
            if again != a {
                return Err(PromptError::Mismatch { location: location.clone(), name: p.name.clone() });
            }
        }
        if a.is_empty() {
            a = p.default.clone().unwrap_or_default();
        }
        a
    };
    if p.private {
        crate::vault::reveal(&answer);
    }
    match &p.encrypt {
        None => Ok(Value::String(answer)),
        Some(scheme) => {
            let vars: Vars = json!({"__answer": answer, "__scheme": scheme, "__salt": p.salt}).as_object().cloned().unwrap_or_default();
            let expr = if p.salt.is_some() { "__answer | password_hash(__scheme, __salt)" } else { "__answer | password_hash(__scheme)" };
            let hashed = templar.eval_expr(expr, &vars).map_err(|e| other(format!("encrypt: {e}")))?;
            // A hash is data: never templated again.
            Ok(Templar::literal(hashed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scripted {
        tty: bool,
        answers: Vec<&'static str>,
        asked: Vec<(String, bool)>,
    }

    impl Asker for Scripted {
        fn interactive(&self) -> bool {
            self.tty
        }
        fn ask(&mut self, question: &str, private: bool) -> std::io::Result<String> {
            self.asked.push((question.to_string(), private));
            Ok(self.answers.remove(0).to_string())
        }
    }

    fn playbook(prompts: &str) -> (tempfile::TempDir, Playbook) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("site.yml"), format!("- hosts: all\n  vars: {{given: play}}\n  vars_prompt:\n{prompts}  tasks: []\n")).unwrap();
        let pb = crate::playbook::load(&d.path().join("site.yml")).unwrap();
        (d, pb)
    }

    #[test]
    fn answers_defaults_confirmation_and_extra_vars() {
        let (_d, mut pb) = playbook(
            "    - {name: release, prompt: Release, private: false, default: '1.0'}\n    - {name: pw, prompt: Password, confirm: true}\n    - {name: given, prompt: Given}\n",
        );
        let mut a = Scripted { tty: true, answers: vec!["", "s3cret-pw", "s3cret-pw"], asked: vec![] };
        let extra: Vars = json!({"given": "extra"}).as_object().cloned().unwrap();
        answer(&mut pb, &extra, &mut a, &Templar::new()).unwrap();
        assert_eq!(pb.plays[0].vars["release"], "1.0");
        assert_eq!(pb.plays[0].vars["pw"], "s3cret-pw");
        assert_eq!(pb.plays[0].vars["given"], "play", "-e answers it: not asked, extra vars win later");
        assert_eq!(a.asked, [("Release [1.0]: ".to_string(), false), ("Password: ".to_string(), true), ("confirm Password: ".to_string(), true)]);
    }

    #[test]
    fn without_a_terminal_the_default_or_an_error() {
        let (_d, mut pb) = playbook("    - {name: release, default: '2.0'}\n");
        let mut a = Scripted { tty: false, answers: vec![], asked: vec![] };
        answer(&mut pb, &Vars::new(), &mut a, &Templar::new()).unwrap();
        assert_eq!(pb.plays[0].vars["release"], "2.0");
        let (_d, mut pb) = playbook("    - {name: token}\n");
        let e = answer(&mut pb, &Vars::new(), &mut a, &Templar::new()).unwrap_err().to_string();
        assert!(e.ends_with("vars_prompt 'token': no terminal to ask on and no default; give it with -e token=..."), "{e}");
        assert!(e.contains("site.yml:4:7"), "{e}");
    }

    #[test]
    fn mismatched_confirmation_and_encrypted_answers() {
        let (_d, mut pb) = playbook("    - {name: pw, confirm: true}\n");
        let mut a = Scripted { tty: true, answers: vec!["one", "two"], asked: vec![] };
        assert!(matches!(answer(&mut pb, &Vars::new(), &mut a, &Templar::new()), Err(PromptError::Mismatch { .. })));
        let (_d, mut pb) = playbook("    - {name: pw, encrypt: sha512_crypt, salt: saltsalt}\n");
        let mut a = Scripted { tty: true, answers: vec!["secret"], asked: vec![] };
        answer(&mut pb, &Vars::new(), &mut a, &Templar::new()).unwrap();
        let hashed = Templar::new().render_str("{{ pw }}", &pb.plays[0].vars).unwrap();
        let expected = Templar::new().render_str("{{ 'secret' | password_hash('sha512', 'saltsalt') }}", &Vars::new()).unwrap();
        assert!(hashed.starts_with("$6$saltsalt$") && hashed == expected, "{hashed}");
    }
}
