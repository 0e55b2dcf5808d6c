/* placeholder: replaced by the module's implementation. */
typedef int wa_placeholder_err;
