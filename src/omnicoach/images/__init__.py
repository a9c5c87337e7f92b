"""Images users send (chat ``image_url`` parts, uploaded files): checked and decoded safely
into RGB pictures for the vision models."""
