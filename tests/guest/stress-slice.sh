#!/bin/sh
# `make test`'s short slice of `make stress`: the differential fuzz for 12 s per device per
# driver (about 2 minutes in all) with the comparison, on the normal test kernel. Every call
# kind is in, VFIO_DEVICE_IOEVENTFD and VFIO_DEVICE_FEATURE included.
exec sh /bin/stress-fuzz.sh 12 200000
