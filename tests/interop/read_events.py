"""Read a TensorBoard log directory with TensorBoard's own reader and print its scalars.

    python read_events.py LOGDIR

Prints one JSON object: tag -> [[step, value], ...], as EventAccumulator loads them (it checks
each record's CRCs and skips files it cannot parse).
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1])
acc.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}))
