"""A child whose tracer is killed with SIGKILL while it sleeps: it must go on, finalize and
exit 0 as if never traced. The imports give the final snapshot something to read (a pause of
some milliseconds)."""
import argparse, asyncio, decimal, email.parser, http.client, json, sys, time, xml.dom.minidom

time.sleep(float(sys.argv[1]))
print("finished", flush=True)
