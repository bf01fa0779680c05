#!/usr/bin/env bash
# Sort loose medical PDFs at the top of a case folder into "Medical Records/<Provider>/".
# Matches on provider keywords in the file name, so renamed scanner files are NOT caught.
# Usage: Tools/organize_medical_subfolders.sh "projects/<Case>" [--dry-run]
set -euo pipefail

case_dir="${1:?usage: $0 CASE_DIR [--dry-run]}"
dry_run="${2:-}"

declare -A providers=(
  [mercy]="Mercy Hospital ER"
  [patel]="Dr Anita Patel Orthopedics"
  [lakeside]="Lakeside Physical Therapy"
  [imaging]="City Imaging Center"
  [vincent]="St Vincent Urgent Care"
  [northside]="Northside Orthopedic Group"
)

shopt -s nullglob nocaseglob
for f in "$case_dir"/*.pdf; do
  name="$(basename "$f")"
  lower="${name,,}"
  for key in "${!providers[@]}"; do
    if [[ "$lower" == *"$key"* ]]; then
      dest="$case_dir/Medical Records/${providers[$key]}"
      if [[ "$dry_run" == "--dry-run" ]]; then
        echo "would move: $name -> Medical Records/${providers[$key]}/"
      else
        mkdir -p "$dest"
        mv -n -- "$f" "$dest/"
        echo "moved: $name -> Medical Records/${providers[$key]}/"
      fi
      break
    fi
  done
done
