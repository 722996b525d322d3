/* SPDX-License-Identifier: GPL-2.0 */
/* Input of the module-local bindgen run (see Kbuild). */
#include <linux/vfio.h>
#include <uapi/linux/vfio.h>
#include "shim.h"
