/* placeholder */ typedef int wa_placeholder_forge;
