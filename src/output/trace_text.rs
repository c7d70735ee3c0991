//! The text `python -m trace --report` prints before its summary: "functions called:" (what
//! `--listfuncs` records) and "calling relationships:" (what `--trackcalls` records), byte for
//! byte as `CoverageResults.write_results` prints them.

use crate::aggregate::model::CoverageResults;

/// trace's "functions called:" section, with its leading blank line; empty when no function
/// was recorded (trace prints nothing then).
pub fn functions_called(results: &CoverageResults) -> String {
    if results.calledfuncs.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nfunctions called:\n");
    for f in &results.calledfuncs {
        out.push_str(&format!(
            "filename: {}, modulename: {}, funcname: {}\n",
            f.filename, f.modulename, f.funcname
        ));
    }
    out
}

/// trace's "calling relationships:" section: callers grouped under `*** file ***`, a callee
/// in another file introduced by `  --> file`. Empty when no edge was recorded.
pub fn calling_relationships(results: &CoverageResults) -> String {
    if results.callers.is_empty() {
        return String::new();
    }
    let mut out = String::from("\ncalling relationships:\n");
    let (mut last_file, mut last_callee_file) = ("", "");
    for (caller, callee) in results.callers.keys() {
        if caller.filename != last_file {
            out.push_str(&format!("\n*** {} ***\n", caller.filename));
            last_file = &caller.filename;
            last_callee_file = "";
        }
        if callee.filename != caller.filename && callee.filename != last_callee_file {
            out.push_str(&format!("  --> {}\n", callee.filename));
            last_callee_file = &callee.filename;
        }
        out.push_str(&format!(
            "    {}.{} -> {}.{}\n",
            caller.modulename, caller.funcname, callee.modulename, callee.funcname
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::model::FuncKey;

    #[test]
    fn sections_as_trace_prints_them() {
        let mut r = CoverageResults::default();
        let main = FuncKey::new("/a/m.py", "main");
        let helper = FuncKey::new("/a/m.py", "helper");
        let dumps = FuncKey::new("/lib/json.py", "dumps");
        for f in [&main, &helper, &dumps] {
            r.calledfuncs.insert(f.clone());
        }
        r.callers.insert((main.clone(), helper.clone()), 1);
        r.callers.insert((main.clone(), dumps.clone()), 1);
        r.callers.insert((helper.clone(), dumps.clone()), 1);
        assert_eq!(
            functions_called(&r),
            "\nfunctions called:\n\
             filename: /a/m.py, modulename: m, funcname: helper\n\
             filename: /a/m.py, modulename: m, funcname: main\n\
             filename: /lib/json.py, modulename: json, funcname: dumps\n"
        );
        assert_eq!(
            calling_relationships(&r),
            "\ncalling relationships:\n\n*** /a/m.py ***\n\
             \x20 --> /lib/json.py\n    m.helper -> json.dumps\n\
             \x20   m.main -> m.helper\n    m.main -> json.dumps\n"
        );
        assert_eq!(functions_called(&CoverageResults::default()), "");
    }
}
